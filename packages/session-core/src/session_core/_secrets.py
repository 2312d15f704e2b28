"""Secrets (bot token, webhook secret, API key) from SSM Parameter Store, read once per process
unless a caller asks for the current value (a secret rotated since)."""

from __future__ import annotations

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
ACCESS_DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "KMSAccessDeniedException", "InvalidKeyId"}
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
            raise SecretAccessDeniedError(
                name, _denied_reason(aws_error_code(exc)), error_code=aws_error_code(exc)
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


def _denied_reason(code: str) -> str:
    """What to fix when SSM refused a parameter with ``code`` (IAM, or the key's KMS policy)."""
    return (
        f"this function's role may not read or decrypt it ({code}): if it is a SecureString under "
        "a customer managed KMS key, give that key's ARN as the stack's SecretsKmsKeyArn "
        "(permissions just deployed take a few seconds to apply; the message is retried)"
    )
