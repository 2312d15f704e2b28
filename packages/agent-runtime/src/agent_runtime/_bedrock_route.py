"""Where the model proxy sends Bedrock calls, and what it signs them with when no role is
assumed: decided here once, for the runtime and for `agentbot doctor` / `agentbot dev`, which
must ask the place the turns call, the way they call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ._errors import ModelBackendError

GATEWAY_VARIABLE = "ANTHROPIC_BEDROCK_BASE_URL"
# boto3's own variable for bedrock-runtime's endpoint. Not the global AWS_ENDPOINT_URL: in
# `agentbot dev` that is the local stack's, which has no Bedrock.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
ENDPOINT_NOT_A_URL = (
    "must be an http(s) URL such as https://bedrock-runtime.eu-west-1.amazonaws.com, without a user:password@"
)
# The signature of a gateway's calls when there are no AWS credentials: such a gateway
# authenticates callers itself and ignores it.
_PLACEHOLDER_KEY = "agentbot-unsigned"


class BedrockEndpoints(NamedTuple):
    """Where Bedrock calls go, as set: ``gateway`` (``GATEWAY_VARIABLE``), ``endpoint``
    (``ENDPOINT_VARIABLE``); None when unset."""

    gateway: str | None
    endpoint: str | None


def read_bedrock_endpoints(environ: Mapping[str, str]) -> BedrockEndpoints:
    """The two variables as the runtime reads them, stripped, an empty one as unset: doctor and
    dev read them here too, so they ask the place the turns call."""
    return BedrockEndpoints(
        gateway=environ.get(GATEWAY_VARIABLE, "").strip() or None,
        endpoint=environ.get(ENDPOINT_VARIABLE, "").strip() or None,
    )


def bedrock_upstream(*, gateway: str | None, endpoint: str | None, region: str) -> str:
    """The URL Bedrock calls go to: the gateway (``GATEWAY_VARIABLE``), else the endpoint
    (``ENDPOINT_VARIABLE``), else bedrock-runtime of ``region``."""
    return gateway or endpoint or f"https://bedrock-runtime.{region}.amazonaws.com"


def lacks_signing_credentials(session: Any, *, gateway: str | None) -> bool:
    """Whether Bedrock calls have nothing to be signed with when no role is assumed: no
    credentials in ``session`` (a boto3 Session, or None), and no gateway, which would
    authenticate callers itself and need none."""
    return not gateway and _credentials_of(session) is None


def _credentials_of(session: Any) -> Any:
    return session.get_credentials() if session is not None else None


def bedrock_signing_credentials(session: Any, *, gateway: str | None) -> Any:
    """The frozen botocore credentials Bedrock calls are signed with when no role is assumed:
    ``session``'s (a boto3 Session, or None); without any, a placeholder when a gateway takes
    the calls (``signs_for_real`` tells them apart).

    Raises ModelBackendError when there are no credentials and no gateway."""
    from botocore.credentials import Credentials

    # One lookup: boto3 does not remember finding none, and a lookup may wait on the metadata
    # address (the rule is ``lacks_signing_credentials``'s, for a session already looked in).
    found = _credentials_of(session)
    if found is not None:
        return found.get_frozen_credentials()
    if not gateway:
        raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", "is not set and no AWS credentials were found")
    return Credentials(_PLACEHOLDER_KEY, _PLACEHOLDER_KEY).get_frozen_credentials()


def signs_for_real(credentials: Any) -> bool:
    """Whether ``credentials`` (``bedrock_signing_credentials``'s) are AWS credentials, not the
    placeholder a self-authenticating gateway is called with."""
    return bool(credentials.access_key != _PLACEHOLDER_KEY)
