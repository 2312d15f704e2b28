"""The AWS-free local stack: everything `agentbot dev` and the tests run on 127.0.0.1.

A moto server (with LocalStack when Docker answers) for S3, DynamoDB and SQS; a Lambda service
that drives the real `awslambdaric`; the event sources that feed it (SQS, HTTP API); a Bot API
server and a scripted Messages API server (and model endpoints that cannot be reached);
provisioning of the resources the template declares; the local state directory, the reaper that
ends a worker's process tree and the unprivileged agent user. Nothing here is deployed.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from session_core import MAX_RECEIVE_COUNT

    from ._aws import LOCAL_CREDENTIALS, LocalEndpoints, aws_endpoint, local_client, moto_endpoint
    from ._events import BatchOutcome, LocalHttpApi, SqsEventSource, http_api_event, sqs_lambda_event
    from ._lambda import FunctionSpec, LocalLambda
    from ._loopback import LoopbackServer
    from ._model_server import (
        DEMO_MODEL_LABEL,
        FREE_USAGE,
        CallUsage,
        ModelFault,
        ModelServer,
        Streamed,
        ToolCall,
        conversation_tool_results,
        demo_responder,
        echo_responder,
        eventstream_frame,
        is_summary_request,
        last_tool_call,
        last_user_text,
        tool_results,
        user_turns,
    )
    from ._moto_process import moto_process
    from ._process_tree import kill_descendants
    from ._provisioning import S3_EXPIRY_MARGIN_DAYS, TTL_ATTRIBUTE, ResourceNames, StackResources, provision
    from ._sigv4 import LocalCredentials, signed_by
    from ._state import StateDirectory
    from ._telegram import TEST_BOT_TOKEN, LocalTelegram, SentFile, TelegramFault
    from ._transcribe import LocalTranscribe, TranscriptionJob
    from ._unprivileged import (
        AGENT_USER,
        agent_user,
        make_directory_reachable,
        make_interpreter_reachable,
        make_reachable,
        prepare_for_agent_user,
        unreadable_for,
        which_for,
    )
    from ._unreachable import blackholed_endpoint, refusing_endpoint
else:  # imported on first use: see _lazy_exports
    from session_core import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, __file__)
    del TYPE_CHECKING, lazy_exports  # not exports

__all__ = [
    "AGENT_USER",
    "DEMO_MODEL_LABEL",
    "FREE_USAGE",
    "LOCAL_CREDENTIALS",
    "MAX_RECEIVE_COUNT",
    "S3_EXPIRY_MARGIN_DAYS",
    "TEST_BOT_TOKEN",
    "TTL_ATTRIBUTE",
    "BatchOutcome",
    "CallUsage",
    "FunctionSpec",
    "LocalCredentials",
    "LocalEndpoints",
    "LocalHttpApi",
    "LocalLambda",
    "LocalTelegram",
    "LocalTranscribe",
    "LoopbackServer",
    "ModelFault",
    "ModelServer",
    "ResourceNames",
    "SentFile",
    "SqsEventSource",
    "StackResources",
    "StateDirectory",
    "Streamed",
    "TelegramFault",
    "ToolCall",
    "TranscriptionJob",
    "agent_user",
    "aws_endpoint",
    "blackholed_endpoint",
    "conversation_tool_results",
    "demo_responder",
    "echo_responder",
    "eventstream_frame",
    "http_api_event",
    "is_summary_request",
    "kill_descendants",
    "last_tool_call",
    "last_user_text",
    "local_client",
    "make_directory_reachable",
    "make_interpreter_reachable",
    "make_reachable",
    "moto_endpoint",
    "moto_process",
    "prepare_for_agent_user",
    "provision",
    "refusing_endpoint",
    "signed_by",
    "sqs_lambda_event",
    "tool_results",
    "unreadable_for",
    "user_turns",
    "which_for",
]
