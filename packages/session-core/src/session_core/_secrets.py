"""Secrets (bot token, webhook secret, API key) from SSM Parameter Store, read once per process
unless a caller asks for the current value (a secret rotated since)."""

from __future__ import annotations

import re
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, storage_error
from ._errors import ConfigError, SecretAccessDeniedError

# Parameter name → value. A warm Lambda container reads each secret once; values never
# leave this dict except to the caller (no logging, no error messages).
_cache: dict[str, str] = {}
_lock = threading.Lock()
# What SSM answers when the role may not read the parameter (IAM) or may not decrypt it (the
# SecureString's KMS key: SSM passes KMS's refusal on, or says the key cannot be used).
# SSM's code when the SecureString's KMS key itself cannot be used (disabled, pending deletion,
# deleted): no permission or SecretsKmsKeyArn helps, only the key. Its message names the key
# and KMS's own word for its state ("arn:aws:kms:...:key/... is pending deletion. (Service:
# AWSKMS; ... Error Code: KMSInvalidStateException ...)").
KEY_UNUSABLE = "InvalidKeyId"
ACCESS_DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "KMSAccessDeniedException", KEY_UNUSABLE}
)
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[A-Za-z0-9/_-]+")
_KEY_STATES = (
    ("pending deletion", "pending deletion"),
    ("is disabled", "disabled"),
    ("does not exist", "deleted"),
)


def cached_secret(name: str) -> str | None:
    """The value of ``name`` this process last read from SSM, or None if it has not read it."""
    with _lock:
        return _cache.get(name)


def read_secret(ssm_client: Any, name: str, *, fresh: bool = False) -> str:
    """The decrypted value of SSM parameter ``name`` (a SecureString), cached per process.
    ``fresh=True`` asks SSM again and caches what it answers (the operator rotated it).

    Raises ConfigError naming the parameter when it does not exist or is empty,
    SecretAccessDeniedError (retryable) when the role may not read or decrypt it, and
    StorageError for other SSM failures (throttling, network) that a retry may cure.
    """
    cached = None if fresh else cached_secret(name)
    if cached is not None:
        return cached
    try:
        out = ssm_client.get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        if aws_error_code(exc) == "ParameterNotFound":
            raise ConfigError(
                name, "SSM parameter not found; create it as a SecureString in this region"
            ) from exc
        if aws_error_code(exc) in ACCESS_DENIED_CODES:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            raise SecretAccessDeniedError(
                name, _denied_reason(aws_error_code(exc), message), error_code=aws_error_code(exc)
            ) from exc
        raise storage_error("read_secret", exc, context=f"SSM GetParameter {name!r}") from exc
    except BotoCoreError as exc:
        raise storage_error("read_secret", exc, context=f"SSM GetParameter {name!r}") from exc
    # Without the newline `put-parameter --value file://key.txt` keeps: no token, key or header
    # value may carry one (every request made with it would fail, each as something else).
    value = str(out["Parameter"].get("Value", "")).strip()
    if not value:
        raise ConfigError(name, "SSM parameter is empty; put the secret's value in it")
    with _lock:
        _cache[name] = value
    return value


def _denied_reason(code: str, message: str) -> str:
    """What to fix when SSM refused a parameter with ``code`` (IAM, the key's KMS policy, or
    the key itself: ``message`` then names it, never the parameter's value)."""
    if code == KEY_UNUSABLE:
        found = _KMS_KEY_ARN.search(message)
        key = f"its KMS key {found[0]}" if found else "its KMS key"
        state = next(
            (said for words, said in _KEY_STATES if words in message), "disabled or scheduled for deletion"
        )
        return (
            f"{key} cannot be used ({code}: {state}): enable the key (or cancel its deletion) in "
            "KMS, or put the value in the parameter again under a usable key "
            "(SecretsKmsKeyArn is not the cause; the message is retried)"
        )
    return (
        f"this function's role may not read or decrypt it ({code}): if it is a SecureString under "
        "a customer managed KMS key, give that key's ARN as the stack's SecretsKmsKeyArn "
        "(permissions just deployed take a few seconds to apply; the message is retried)"
    )
