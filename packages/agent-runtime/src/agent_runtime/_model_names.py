"""What the bundled CLI makes of a model name written in a setting or in agents.json: an alias it
resolves itself, an id it sends as it is, or a name no model answers to. Measured against the
CLI (2.1.x): aliases are matched without regard to case, anything else is sent as written."""

from __future__ import annotations

import re

# Names the CLI resolves itself for any model setting; with Bedrock, to the settings' models
# (see _environment). A "[1m]" suffix (1M context) may follow any of them.
CLI_ALIASES = ("sonnet", "opus", "haiku", "fable", "best", "opusplan")
# A subagent's "inherit" is its parent's model; "default" is the CLI's default model for the
# main agent only: as a subagent's model the CLI sends "default" to the API, which has no such
# model (every call of that subagent fails).
AGENT_ONLY = "inherit"
MAIN_ONLY = "default"
_ALIASES = frozenset({*CLI_ALIASES, AGENT_ONLY, MAIN_ONLY})
# A "[1m]" suffix (1M context) the CLI takes off any name before it asks for the model.
_ONE_MILLION_CONTEXT = re.compile(r"\[1m\]$", re.IGNORECASE)
# Bedrock's form of an Anthropic API id: the CLI sends an agents.json "claude-haiku-4-5-20251001"
# to Bedrock as its inference profile "us.anthropic.claude-haiku-4-5-20251001-v1:0".
_BEDROCK_FORM = re.compile(r"(?:([a-z-]+)\.)?anthropic\.(claude-[a-z0-9-]+?)(?:-v\d+(?::\d+)?)?")
# What a subagent's model may be, as a refusal lists it.
AGENT_MODEL_VALUES = (
    f"{', '.join(CLI_ALIASES)} (each with [1m] for 1M context too), {AGENT_ONLY}, "
    "or a model id (claude-sonnet-4-5-20250929, or a Bedrock model or inference-profile id)"
)


def without_context_suffix(name: str | None) -> str:
    """``name`` as the CLI asks for it: without a "[1m]" (1M context) suffix."""
    return _ONE_MILLION_CONTEXT.sub("", name or "")


def model_id_of(name: str | None) -> str | None:
    """The id the CLI asks the API for with an agents.json ``model``; None for an alias."""
    model = without_context_suffix(name)
    # The CLI reads an alias whatever its case and the spaces around it (" haiku ").
    return model if model and model.strip().lower() not in _ALIASES else None


def anthropic_id_of(bedrock_id: str) -> str | None:
    """The Anthropic API id a Bedrock model or inference-profile id stands for
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0" → "claude-haiku-4-5-20251001"); None for
    any other name."""
    bedrock = _BEDROCK_FORM.fullmatch(bedrock_id)
    return bedrock.group(2) if bedrock is not None else None


def geography_of(bedrock_id: str) -> str | None:
    """The geography prefix of a Bedrock inference-profile id ("us", "eu", "global", ...);
    None for a model id without one, or any other name."""
    bedrock = _BEDROCK_FORM.fullmatch(bedrock_id)
    return bedrock.group(1) if bedrock is not None else None


def agent_model_mistake(name: str) -> str | None:
    """Why a subagent's ``model`` can never be answered, or None when it can be (an alias, or
    a model id the account may or may not have: `agentbot doctor` asks the model)."""
    model = name.strip()
    if not model:
        return f"is empty: leave it out to use the main agent's model, or name one of {AGENT_MODEL_VALUES}"
    if without_context_suffix(model).lower() == MAIN_ONLY:
        return (
            f"{name!r} is no model for a subagent (the CLI sends it to the model as it is): "
            f"use {AGENT_ONLY} for the main agent's model, or name one of {AGENT_MODEL_VALUES}"
        )
    if any(c.isspace() for c in model):  # the CLI trims the ends only
        return f"{name!r} has spaces, which no model id has: name one of {AGENT_MODEL_VALUES}"
    return None
