"""With Bedrock, every model the CLI asks for is one the operator chose: BEDROCK_MODEL_ID, or
ANTHROPIC_SMALL_FAST_MODEL for the quick background calls (BEDROCK_MODEL_ID when unset). The
CLI's own defaults (a Haiku for its small/fast model and the "haiku" alias, an Opus for "opus")
are models an account need not have enabled and the invoke role is not allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agentbot_testing import claude_config_without_approvals
from local_stack import ModelFault

pytestmark = pytest.mark.slow

CHOSEN = "anthropic.claude-sonnet-4-5-v1:0"
BEDROCK = {"CLAUDE_CODE_USE_BEDROCK": "1", "ANTHROPIC_API_KEY_PARAMETER": "", "BEDROCK_MODEL_ID": CHOSEN}
# What Bedrock says to a model id an account or a region does not have.
NOT_ENABLED = ModelFault(status=400, message="The provided model identifier is invalid.")


def _subagent_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> dict[str, str]:
    """A claude-config of this test's own whose summarizer runs on ``model`` (the session's
    shared one, edited, would hand it to every later test)."""
    config = claude_config_without_approvals(tmp_path)
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    agents_file = config / "agents.json"
    agents = json.loads(agents_file.read_text())
    agents["agents"]["summarizer"]["model"] = model
    agents_file.write_text(json.dumps(agents))
    return {"CLAUDE_CONFIG_PATH": str(config)}


@pytest.mark.parametrize("alias", ["haiku", "opus"])
def test_a_subagent_on_a_model_alias_answers_where_only_the_chosen_model_is_enabled(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch, alias
) -> None:
    """agents.json may name a model by alias (the cheap "haiku" for a summarizer): the CLI
    resolves it to a model the operator chose, not to its default Haiku or Opus id."""
    config = _subagent_model(tmp_path, monkeypatch, alias)
    model_server.only_models([CHOSEN], refusal=NOT_ENABLED)
    runtime = make_runtime(env=BEDROCK | config | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("agent: the cat sat on the mat", turn_id=1))

    assert result.ok and "SUBAGENT-SUMMARY" in result.text, result
    assert "API Error" not in result.text, result.text


def test_a_subagent_on_an_alias_no_setting_maps_still_reaches_the_model_the_cli_picks(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch
) -> None:
    """No setting maps "fable": the CLI asks Bedrock for its own id of it, which an account may
    have enabled. The proxy refused it as unchosen ("Agent terminated early due to an API
    error"); only the CLI's start-up checks (1-token calls, not streamed) are held back."""
    config = _subagent_model(tmp_path, monkeypatch, "fable")
    runtime = make_runtime(env=BEDROCK | config | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("agent: the cat sat on the mat", turn_id=1))

    assert result.ok and "SUBAGENT-SUMMARY" in result.text, result
    assert [c for c in model_server.model_calls if "fable" in c.model_id], [
        c.model_id for c in model_server.model_calls
    ]


def test_a_subagent_given_an_anthropic_api_model_id_answers_on_its_bedrock_profile(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch
) -> None:
    """agents.json may name a model as the Anthropic API does: the CLI asks Bedrock for its
    inference profile (another id). That model was chosen; the proxy refused it ("Agent
    terminated early due to an API error"), where before it answered."""
    profile = "us.anthropic.claude-haiku-4-5-20251001-v1:0"  # the CLI's profile of that id
    config = _subagent_model(tmp_path, monkeypatch, "claude-haiku-4-5-20251001")
    model_server.only_models([CHOSEN, profile], refusal=NOT_ENABLED)
    runtime = make_runtime(env=BEDROCK | config | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("agent: the cat sat on the mat", turn_id=1))

    assert result.ok and "SUBAGENT-SUMMARY" in result.text, result
    assert [c for c in model_server.model_calls if c.model_id == profile and c.body["max_tokens"] > 1]


def test_a_chosen_model_with_the_one_million_context_suffix_answers(
    make_runtime, model_server, turn_request
) -> None:
    """BEDROCK_MODEL_ID may carry "[1m]" (1M context): the CLI takes it off before it asks
    Bedrock for the model, so that bare id is the chosen one, not refused as another."""
    model_server.only_models([CHOSEN], refusal=NOT_ENABLED)
    env = BEDROCK | {"BEDROCK_MODEL_ID": f"{CHOSEN}[1m]", "ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url}
    runtime = make_runtime(env=env)

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok and result.text == "turns=1 last=hello", result
    assert {c.model_id for c in model_server.model_calls} == {CHOSEN}


def test_the_small_fast_model_is_the_one_the_operator_names(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch
) -> None:
    """ANTHROPIC_SMALL_FAST_MODEL (SmallFastModel) is what "haiku" and the CLI's background
    calls use: an operator who enabled a cheaper model for them gets it."""
    small = "anthropic.claude-haiku-4-5-v1:0"
    config = _subagent_model(tmp_path, monkeypatch, "haiku")
    model_server.only_models([CHOSEN, small], refusal=NOT_ENABLED)
    runtime = make_runtime(
        env=BEDROCK
        | config
        | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url, "ANTHROPIC_SMALL_FAST_MODEL": small}
    )

    result = runtime.run_turn(turn_request("agent: the dog sat on the log", turn_id=1))

    assert result.ok and "SUBAGENT-SUMMARY" in result.text, result
    # The subagent's call (not a 1-token start-up check) went to the small model.
    assert [c for c in model_server.model_calls if c.model_id == small and c.body["max_tokens"] > 1], [
        (c.model_id, c.body.get("max_tokens")) for c in model_server.model_calls
    ]


def test_no_call_for_a_model_the_operator_did_not_choose_reaches_bedrock(
    make_runtime, model_server, turn_request
) -> None:
    """The CLI checks its default models (an Opus, a Haiku, ...) with 1-token calls at the start
    of each turn: in an account or role that allows only the chosen model they are refused
    (AccessDenied noise, and a round trip each before the answer), where allowed they cost."""
    model_server.only_models([CHOSEN])
    runtime = make_runtime(env=BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok and result.text == "turns=1 last=hello", result
    assert model_server.refused_calls == [], [c.model_id for c in model_server.refused_calls]
    assert {c.model_id for c in model_server.model_calls} == {CHOSEN}


def test_a_main_model_of_default_is_the_operators_bedrock_model(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch
) -> None:
    """agents.json main.model "default" is the CLI's default model: on Bedrock the one the
    operator chose (BedrockModelId), never the CLI's own default id, which the account need
    not have enabled (measured with the bundled CLI; the README decides it is allowed)."""
    config = claude_config_without_approvals(tmp_path)
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    agents_file = config / "agents.json"
    agents = json.loads(agents_file.read_text())
    agents["main"]["model"] = "default"
    agents_file.write_text(json.dumps(agents))
    model_server.only_models([CHOSEN], refusal=NOT_ENABLED)
    env = BEDROCK | {"CLAUDE_CONFIG_PATH": str(config), "ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url}
    runtime = make_runtime(env=env)

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok and result.text == "turns=1 last=hello", result
    assert {c.model_id for c in model_server.model_calls} == {CHOSEN}


def test_a_subagents_anthropic_api_id_answers_on_the_profile_of_the_region_prefix_the_operator_set(
    make_runtime, model_server, turn_request, tmp_path, monkeypatch
) -> None:
    """ANTHROPIC_BEDROCK_REGION_PREFIX tells the CLI which geography's inference profile to call
    for an Anthropic API id ("eu" from a US region, where the account enabled only that one).
    The runtime kept it from the CLI, which called the region's "us." profile: refused in
    every turn that used the subagent."""
    profile = "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
    config = _subagent_model(tmp_path, monkeypatch, "claude-haiku-4-5-20251001")
    model_server.only_models([CHOSEN, profile], refusal=NOT_ENABLED)
    env = BEDROCK | config | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url}
    runtime = make_runtime(env=env | {"AWS_REGION": "us-east-1", "ANTHROPIC_BEDROCK_REGION_PREFIX": "eu"})

    result = runtime.run_turn(turn_request("agent: the cat sat on the mat", turn_id=1))

    assert result.ok and "SUBAGENT-SUMMARY" in result.text, result
    assert [c for c in model_server.model_calls if c.model_id == profile and c.body["max_tokens"] > 1], [
        c.model_id for c in model_server.model_calls
    ]
