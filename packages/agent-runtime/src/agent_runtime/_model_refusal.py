"""Failed model calls that no retry helps. The operator's to fix: the key or role refused, the
account out of credit, a model id the API does not know; each fails every later turn the same
way, so the user hears the bot is misconfigured and the operator which setting to fix (see
``_config_report``). The conversation's: a context the CLI could not compact enough, which
every later message of the chat meets until /new. The message's: a request too large for the
API (413: a big file with the conversation, even after the CLI's summary), and any other
request the API refuses as invalid (400), which sending it again cannot change."""

from __future__ import annotations

from pathlib import Path

from claude_agent_sdk import ResultMessage
from session_core import KEY_REFUSED, SECRET_REREAD_INTERVAL_S

from ._claude_config import ClaudeConfig
from ._errors import ModelBackendError
from ._settings import RuntimeSettings

# The CLI's kind of a failed call (AssistantMessage.error), decided from the provider's answer.
_OUT_OF_CREDIT = "billing_error"  # Anthropic: 400 "Your credit balance is too low ..."
_UNKNOWN_MODEL = "model_not_found"  # 404, or Bedrock's 400 "The provided model identifier is invalid"
_INVALID_REQUEST = "invalid_request"
# The API's status for a request past its size (request_too_large, 32 MB), as the CLI reports
# it (api_error_status); its kind is a plain invalid_request.
_REQUEST_TOO_LARGE = 413
# The CLI's own words (its constant) when the context overflows and its compaction did not
# help; no field says so apart from a plain 400 invalid_request.
_CONTEXT_FULL = "Prompt is too long"


def operator_refusal(
    status: int | None, api_error: str | None, settings: RuntimeSettings, config: ClaudeConfig
) -> ModelBackendError | None:
    """What the operator must fix when the model answered ``status`` (the CLI's
    ``api_error_status``) classified as ``api_error``; None for a failure that may pass."""
    answered = f"the model answered {status}" if status else "the model refused the call"
    if status in KEY_REFUSED:
        remedy = None
        if settings.backend != "bedrock":  # the proxy reads it again (see session_core.RotatingSecret)
            remedy = (
                "put a new key in the parameter: running containers use it from their next"
                f" refused call (the parameter is read again at most every {SECRET_REREAD_INTERVAL_S:.0f} s)"
            )
        return ModelBackendError(
            refused_credential(settings), f"{answered}: the key or role is refused", remedy=remedy
        )
    if api_error == _OUT_OF_CREDIT:
        return ModelBackendError(
            refused_credential(settings),
            f"{answered}: the credit balance of the key's account is too low "
            "(add credits under Plans & Billing in the Anthropic Console)",
        )
    if api_error == _UNKNOWN_MODEL:
        setting, model = main_model_setting(settings, config)
        named = f"model {model!r}" if model else "the CLI's default model"
        return ModelBackendError(
            setting, f"{answered}: {named} does not exist, or this key or role may not use it"
        )
    return None


def refused_credential(settings: RuntimeSettings) -> str:
    """The setting behind the credential the model refused."""
    if settings.backend != "bedrock":
        return f"{settings.anthropic_api_key_parameter} (ANTHROPIC_API_KEY_PARAMETER)"
    if settings.model_invoke_role_arn:
        return "MODEL_INVOKE_ROLE_ARN"
    # No role: the proxy signs with the runtime's own credentials (agentbot dev: the operator's).
    return "the AWS credentials (AWS_PROFILE), or the model's access in the Bedrock console"


def main_model_setting(settings: RuntimeSettings, config: ClaudeConfig) -> tuple[str, str | None]:
    """(the setting that chose the main agent's model, that model): agents.json's
    ``main.model`` wins over the deployment's model id (the runtime passes it as the SDK's
    ``model``). A subagent's unknown model fails its Task call, not the turn."""
    if config.main.model:
        return f"{Path(config.root) / 'agents.json'}: main.model", config.main.model
    if settings.backend == "bedrock":
        return "BEDROCK_MODEL_ID (BedrockModelId; ANTHROPIC_MODEL when it is unset)", settings.model
    return "ANTHROPIC_MODEL (AnthropicModel)", settings.model


def context_full(result: ResultMessage | None, api_error: str | None) -> bool:
    """Whether the run ended because the conversation no longer fits the model's context,
    even after the CLI compacted it."""
    return (
        result is not None
        and api_error == _INVALID_REQUEST
        and (result.result or "").startswith(_CONTEXT_FULL)
    )


def request_refused(api_error: str | None) -> bool:
    """Whether the API refused the run's request as invalid (a 400 that is neither about the
    context nor the account): the same request, sent again, is refused again."""
    return api_error == _INVALID_REQUEST


def request_too_large(status: int | None) -> bool:
    """Whether the API refused the run's request as too large (413): the message's files with
    the conversation, still too large after the CLI summarised it. The user's to change (a
    smaller file, or /new), not the operator's."""
    return status == _REQUEST_TOO_LARGE
