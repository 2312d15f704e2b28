"""The runtime's start-up check of model access: what is permanent names the setting to fix."""

from __future__ import annotations

from typing import Any

import pytest
from agent_runtime import ModelBackendError, check_model_access, load_settings

BASE = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "CLAUDE_CODE_USE_BEDROCK": "1"}


class NoCredentials:
    """A boto3-Session-shaped object whose credential chain found nothing."""

    def get_credentials(self) -> Any:
        return None


@pytest.mark.parametrize(
    ("extra", "setting", "words"),
    [
        ({}, "AWS_REGION", "region where the model is enabled"),
        ({"AWS_REGION": "eu-west-1"}, "CLAUDE_CODE_USE_BEDROCK", "no AWS credentials"),
    ],
)
def test_bedrock_without_region_or_credentials_names_the_setting(
    extra: dict[str, str], setting: str, words: str
) -> None:
    environ = {**BASE, **extra}
    with pytest.raises(ModelBackendError) as caught:
        check_model_access(load_settings(environ), environ, ssm=None, session=NoCredentials())
    assert caught.value.setting == setting and words in caught.value.reason
    assert caught.value.retryable is False


def test_bedrock_through_a_gateway_that_authenticates_itself_needs_no_credentials() -> None:
    environ = {**BASE, "AWS_REGION": "eu-west-1", "ANTHROPIC_BEDROCK_BASE_URL": "http://127.0.0.1:9"}
    check_model_access(load_settings(environ), environ, ssm=None, session=NoCredentials())


def test_a_model_invoke_role_is_assumed_at_start(aws: Any) -> None:
    environ = {
        **BASE,
        "AWS_REGION": "us-east-1",
        "MODEL_INVOKE_ROLE_ARN": "arn:aws:iam::123456789012:role/agentbot-model-invoke",
    }
    check_model_access(load_settings(environ), environ, ssm=None, session=None, sts=aws.client("sts"))
    with pytest.raises(ModelBackendError) as caught:
        check_model_access(load_settings(environ), environ, ssm=None, session=None, sts=None)
    assert caught.value.setting == "MODEL_INVOKE_ROLE_ARN"
