"""Where the Bedrock calls of a runtime started from this shell go, as `agentbot doctor` and
`agentbot dev` check them: where the runtime's model proxy sends them
(``agent_runtime.bedrock_upstream``: ANTHROPIC_BEDROCK_BASE_URL, a gateway, when it is set;
else AWS_ENDPOINT_URL_BEDROCK_RUNTIME; else bedrock-runtime of the region), and the CLI picks
inference profiles in the geography ANTHROPIC_BEDROCK_REGION_PREFIX names. A deployed stack
sets none of them (``DIRECT_TO_BEDROCK``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .shown_url import shown_base_url

GATEWAY_VARIABLE = "ANTHROPIC_BEDROCK_BASE_URL"
REGION_PREFIX_VARIABLE = "ANTHROPIC_BEDROCK_REGION_PREFIX"


@dataclass(frozen=True)
class BedrockRoute:
    """``gateway``: the URL model calls go to instead of bedrock-runtime; ``region_prefix``:
    the geography the CLI's inference profiles are taken from instead of the region's;
    ``endpoint``: bedrock-runtime's URL when not AWS's; ``signed``: False for a gateway that
    authenticates callers itself, called without AWS credentials."""

    gateway: str | None = None
    region_prefix: str | None = None
    endpoint: str | None = None
    signed: bool = True

    def upstream(self, region: str) -> str:
        """The URL the runtime's model proxy sends the calls to."""
        from agent_runtime import bedrock_upstream

        return bedrock_upstream(gateway=self.gateway, endpoint=self.endpoint, region=region)

    @property
    def called(self) -> str:
        """What a check line names as answering (or refusing) the model calls: the setting that
        sends them elsewhere than the region's bedrock-runtime, with its origin (never a password
        or a path, which may carry a token)."""
        from agent_runtime import ENDPOINT_VARIABLE

        if self.gateway is not None:
            return f"Bedrock gateway at {shown_base_url(self.gateway)} ({GATEWAY_VARIABLE})"
        if self.endpoint is not None:
            return f"Bedrock at {shown_base_url(self.endpoint)} ({ENDPOINT_VARIABLE})"
        return "Bedrock"

    @property
    def unreachable_fix(self) -> str:
        """What to check when the calls find no one: the setting that chose where they go."""
        from agent_runtime import ENDPOINT_VARIABLE

        if self.gateway is not None:
            return f"check the network, or {GATEWAY_VARIABLE}"
        if self.endpoint is not None:
            return f"check the network, or {ENDPOINT_VARIABLE}"
        return "check the network and region"

    def setting_problem(self) -> str | None:
        """Why the runtime could not call the gateway, or else the endpoint, as written (None:
        it can, or neither is set). The setting's value is not repeated: it may hold a password."""
        # The runtime's own rule and words (load_settings refuses the same at start).
        from agent_runtime import ENDPOINT_NOT_A_URL, ENDPOINT_VARIABLE, is_anthropic_base_url

        if self.gateway is not None:
            if is_anthropic_base_url(self.gateway):
                return None
            return (
                f"{GATEWAY_VARIABLE} must be an http(s) URL such as https://gateway.example.com "
                "(the CLI adds /model/<id>/invoke)"
            )
        if self.endpoint is None or is_anthropic_base_url(self.endpoint):
            return None
        return f"{ENDPOINT_VARIABLE} {ENDPOINT_NOT_A_URL}"


# A deployed stack's runtime: bedrock-runtime of its region, the region's geography.
DIRECT_TO_BEDROCK = BedrockRoute()


def shell_bedrock_route(environ: Mapping[str, str]) -> BedrockRoute:
    """The route of a runtime that `agentbot dev` starts with ``environ``, read as the runtime
    reads it (each setting stripped, an empty one as unset)."""
    from agent_runtime import read_bedrock_endpoints

    gateway, endpoint = read_bedrock_endpoints(environ)
    return BedrockRoute(
        gateway=gateway,
        region_prefix=environ.get(REGION_PREFIX_VARIABLE, "").strip() or None,
        endpoint=endpoint,
    )
