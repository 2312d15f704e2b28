"""The Bedrock id the CLI calls for an Anthropic API model id, named in agents.json or in a
model setting (BEDROCK_MODEL_ID, ANTHROPIC_SMALL_FAST_MODEL).

With Bedrock the bundled CLI does not send "claude-haiku-4-5-20251001" as it is: it calls the
model's inference profile in the region's geography ("eu.anthropic.claude-haiku-4-5-20251001-v1:0"
from eu-west-1), or the one ANTHROPIC_BEDROCK_REGION_PREFIX names, or the main agent's own
geography when its model id has one. The version suffix comes from the CLI's own model
catalog, so the profile is found among those Bedrock lists for the region, by the reading the
runtime's model proxy lets the call through with (``agent_runtime.anthropic_id_of``). An id
the CLI does not know it sends as it is, and Bedrock lists no profile for it either."""

from __future__ import annotations

from typing import Any

# The geography the CLI prefers in a region, by the region's name (read from the bundled CLI):
# any other region (ca-central-1, sa-east-1...) prefers the global one.
_REGION_GEOGRAPHIES = (("us-gov-", "us-gov"), ("us-", "us"), ("eu-", "eu"), ("ap-", "apac"))
_GLOBAL = "global"


def names_an_anthropic_api_id(model_id: str) -> bool:
    """Whether ``model_id`` is written as the Anthropic API names a model (not a Bedrock id)."""
    return model_id.startswith("claude-")


def profile_called_for(
    control: Any, model_id: str, main_model: str, region_prefix: str | None = None
) -> str | None:
    """The inference-profile id the CLI calls for ``model_id``, as the ``control`` client's
    region lists them (ListInferenceProfiles); None when no listed profile stands for it.
    ``region_prefix``: ANTHROPIC_BEDROCK_REGION_PREFIX as the CLI is given it.
    botocore's ClientError / BotoCoreError pass through."""
    from agent_runtime import anthropic_id_of, geography_of

    standing_for = [
        summary["inferenceProfileId"]
        for page in control.get_paginator("list_inference_profiles").paginate(typeEquals="SYSTEM_DEFINED")
        for summary in page.get("inferenceProfileSummaries", [])
        if anthropic_id_of(summary["inferenceProfileId"]) == model_id
    ]
    main_geography = geography_of(main_model)
    wanted = main_geography or _geography_of_region(control.meta.region_name or "", region_prefix)
    preferred = [profile for profile in standing_for if geography_of(profile) == wanted]
    if preferred or main_geography is not None:
        return min(preferred, default=None)
    # None of the region's geography: the CLI takes the first Bedrock lists.
    return next(iter(standing_for), None)


def _geography_of_region(region: str, region_prefix: str | None) -> str:
    if region_prefix is not None and not region.startswith("us-gov-"):  # the CLI keeps GovCloud's own
        return region_prefix
    named = (geography for prefix, geography in _REGION_GEOGRAPHIES if region.startswith(prefix))
    return next(named, _GLOBAL)
