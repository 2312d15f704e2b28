"""Where the Bedrock calls of a runtime started from this shell go, as `agentbot doctor` and
`agentbot dev` check them: the runtime's model proxy sends every call to
ANTHROPIC_BEDROCK_BASE_URL when it is set (a gateway; not bedrock-runtime, nor an
AWS_ENDPOINT_URL_BEDROCK_RUNTIME), and the CLI picks inference profiles in the geography
ANTHROPIC_BEDROCK_REGION_PREFIX names. A deployed stack sets neither (``DIRECT_TO_BEDROCK``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .shown_url import shown_base_url

GATEWAY_VARIABLE = "ANTHROPIC_BEDROCK_BASE_URL"
REGION_PREFIX_VARIABLE = "ANTHROPIC_BEDROCK_REGION_PREFIX"


@dataclass(frozen=True)
class BedrockRoute:
    """``gateway``: the URL model calls go to instead of bedrock-runtime; ``region_prefix``:
    the geography the CLI's inference profiles are taken from instead of the region's."""

    gateway: str | None = None
    region_prefix: str | None = None

    @property
    def called(self) -> str:
        """What a check line names as answering (or refusing) the model calls."""
        if self.gateway is None:
            return "Bedrock"
        return f"Bedrock gateway at {shown_base_url(self.gateway)} ({GATEWAY_VARIABLE})"

    @property
    def unreachable_fix(self) -> str:
        if self.gateway is None:
            return "check the network and region"
        return f"check the network, or {GATEWAY_VARIABLE}"

    def gateway_problem(self) -> str | None:
        """Why the runtime could not call the gateway as written (None: it can, or none is set)."""
        from agent_runtime import is_anthropic_base_url  # the same shape: the CLI adds the path

        if self.gateway is None or is_anthropic_base_url(self.gateway):
            return None
        return (
            f"{GATEWAY_VARIABLE} must be an http(s) URL such as https://gateway.example.com "
            "(the CLI adds /model/<id>/invoke)"
        )


# A deployed stack's runtime: bedrock-runtime of its region, the region's geography.
DIRECT_TO_BEDROCK = BedrockRoute()


def shell_bedrock_route(environ: Mapping[str, str]) -> BedrockRoute:
    """The route of a runtime that `agentbot dev` starts with ``environ`` (the runtime reads
    both settings stripped, an empty one as unset)."""
    return BedrockRoute(
        gateway=environ.get(GATEWAY_VARIABLE, "").strip() or None,
        region_prefix=environ.get(REGION_PREFIX_VARIABLE, "").strip() or None,
    )
