"""Whose AWS credentials sign Bedrock calls when no ``MODEL_INVOKE_ROLE_ARN`` is set.

In Lambda the template always sets the role. In `agentbot dev` the runtime's own credentials
are the local stack's, which Bedrock does not know, so dev puts the developer's own into its
local SSM (a SecureString, as it does the model key) and names the parameter in
``BEDROCK_CREDENTIALS_PARAMETER``: the runtime's environment block, which any process of its
user can read until the runtime re-executes itself, never holds them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from session_core import read_secret

from ._errors import ModelBackendError
from ._process_secrets import aws_session

# A dev-only setting: the SSM parameter holding STS's JSON (AccessKeyId, SecretAccessKey,
# SessionToken) of the credentials to sign Bedrock with.
BEDROCK_CREDENTIALS_PARAMETER = "BEDROCK_CREDENTIALS_PARAMETER"


def bedrock_signing_session(environ: Mapping[str, str], *, ssm: Any) -> Any:
    """The boto3 Session that signs Bedrock calls without a role: the credentials in the SSM
    parameter ``BEDROCK_CREDENTIALS_PARAMETER`` names when set, else the runtime's own.

    Raises ConfigError naming the parameter when it is missing or empty, and ModelBackendError
    naming the setting (never the value) when it is not the JSON expected."""
    name = environ.get(BEDROCK_CREDENTIALS_PARAMETER, "").strip()
    if not name:
        return aws_session()
    import boto3

    try:
        credentials = json.loads(read_secret(ssm, name))
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials.get("SessionToken"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):  # not chained: the value is a secret
        raise ModelBackendError(
            BEDROCK_CREDENTIALS_PARAMETER,
            f"the SSM parameter {name} is not JSON with AccessKeyId and SecretAccessKey",
        ) from None
