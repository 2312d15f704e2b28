"""The model ids the operator chose for a turn: the settings' models and the ids agents.json
names. With Bedrock the model proxy answers a call for another id that is not streamed itself
(the CLI checks its own default models at start with such calls: denied or billed for nothing);
a streamed call is work (a subagent on an alias no setting maps) and goes on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._model_names import anthropic_id_of, model_id_of, without_context_suffix

if TYPE_CHECKING:  # types only: importing them here closes an import cycle with the model proxy
    from ._claude_config import ClaudeConfig
    from ._settings import RuntimeSettings


def chosen_model_ids(settings: RuntimeSettings, config: ClaudeConfig) -> frozenset[str] | None:
    """Every model id a turn may ask for; None when no model is set (the CLI's own default,
    which ``agentbot doctor`` reports)."""
    if not settings.model:
        return None
    named = [config.main.model, *(agent.model for agent in config.agents)]
    chosen = (without_context_suffix(settings.model), without_context_suffix(settings.small_model))
    ids = {*chosen, *(model_id_of(name) for name in named)}
    return frozenset(model for model in ids if model)


def is_chosen(model: str, chosen: frozenset[str]) -> bool:
    """Whether a call for ``model`` asks for a chosen model: by its id, or by the Bedrock
    profile the CLI turns a chosen Anthropic API id into."""
    return model in chosen or anthropic_id_of(model) in chosen
