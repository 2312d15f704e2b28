"""The model ids the operator chose for a turn: the settings' models and the ids agents.json
names. With Bedrock the model proxy answers a call for another id that is not streamed itself
(the CLI checks its own default models at start with such calls: denied or billed for nothing);
a streamed call is work (a subagent on an alias no setting maps) and goes on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: importing them here closes an import cycle with the model proxy
    from ._claude_config import ClaudeConfig
    from ._settings import RuntimeSettings

# Names the CLI resolves itself (a subagent's "inherit" too): with Bedrock, to the settings'
# models (see _environment).
_MODEL_ALIASES = frozenset({"inherit", "default", "sonnet", "opus", "haiku", "fable", "best", "opusplan"})
# A "[1m]" suffix (1M context) the CLI takes off any name before it asks for the model.
_ONE_MILLION_CONTEXT = re.compile(r"\[1m\]$", re.IGNORECASE)
# Bedrock's form of an Anthropic API id: the CLI sends an agents.json "claude-haiku-4-5-20251001"
# to Bedrock as its inference profile "us.anthropic.claude-haiku-4-5-20251001-v1:0".
_BEDROCK_FORM = re.compile(r"(?:[a-z-]+\.)?anthropic\.(claude-[a-z0-9-]+?)(?:-v\d+(?::\d+)?)?")


def _without_context_suffix(name: str | None) -> str:
    return _ONE_MILLION_CONTEXT.sub("", name or "")


def model_id_of(name: str | None) -> str | None:
    """The id the CLI asks the API for with an agents.json ``model``; None for an alias."""
    model = _without_context_suffix(name)
    return model if model and model.lower() not in _MODEL_ALIASES else None


def chosen_model_ids(settings: RuntimeSettings, config: ClaudeConfig) -> frozenset[str] | None:
    """Every model id a turn may ask for; None when no model is set (the CLI's own default,
    which ``agentbot doctor`` reports)."""
    if not settings.model:
        return None
    named = [config.main.model, *(agent.model for agent in config.agents)]
    chosen = (_without_context_suffix(settings.model), _without_context_suffix(settings.small_model))
    ids = {*chosen, *(model_id_of(name) for name in named)}
    return frozenset(model for model in ids if model)


def is_chosen(model: str, chosen: frozenset[str]) -> bool:
    """Whether a call for ``model`` asks for a chosen model: by its id, or by the Bedrock
    profile the CLI turns a chosen Anthropic API id into."""
    if model in chosen:
        return True
    bedrock = _BEDROCK_FORM.fullmatch(model)
    return bedrock is not None and bedrock.group(1) in chosen
