"""The model ids the operator chose for a turn: the settings' models and the ids agents.json
names. With Bedrock the model proxy lets no call for another id leave the container (the CLI
checks its own default models at start: calls the invoke role is not allowed, and costs)."""

from __future__ import annotations

import re

from ._claude_config import ClaudeConfig
from ._settings import RuntimeSettings

# Names the CLI resolves itself (a subagent's "inherit" too): with Bedrock, to the settings'
# models (see _environment).
_MODEL_ALIASES = frozenset({"inherit", "default", "sonnet", "opus", "haiku", "fable", "best", "opusplan"})
# A "[1m]" suffix (1M context) the CLI takes off any name before it asks for the model.
_ONE_MILLION_CONTEXT = re.compile(r"\[1m\]$", re.IGNORECASE)


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
