"""A tiny function for the local Lambda tests: echoes, fails, sleeps or crashes on request."""

import os
import subprocess
import sys
import time

# A tool that leaves home: new session (its own process group), double fork, sleeps.
_ESCAPE = """
import os, sys, time
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""

# A tool asking the Runtime API for the function's next invocation (another chat's, in dev).
_TAKE_NEXT = """
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/2018-06-01/runtime/invocation/next", timeout=5)
    print(200)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError as exc:
    print(type(exc).__name__)
"""

_COLD_START_PID = os.getpid()
_calls = 0


def handle(event, context):
    global _calls
    _calls += 1
    action = event.get("action")
    if action == "raise":
        raise ValueError("asked to fail")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        os._exit(3)
    if action == "escape":
        # A tool escapes its process group, then the handler (optionally) keeps working.
        subprocess.Popen([sys.executable, "-c", _ESCAPE, event["pid_file"]])
        while not os.path.exists(event["pid_file"]):
            time.sleep(0.01)
        time.sleep(event.get("then_sleep", 0))
    if action == "endpoint":  # where the function's boto3 sends a service's requests
        import boto3

        return {"endpoint": boto3.client(event["service"], region_name="us-east-1").meta.endpoint_url}
    if action == "take_next":
        api = os.environ["AWS_LAMBDA_RUNTIME_API"]
        taken = subprocess.run([sys.executable, "-c", _TAKE_NEXT, api], capture_output=True, text=True)
        return {"tool_got": taken.stdout.strip()}
    return {
        "echo": event,
        "pid": _COLD_START_PID,
        "calls": _calls,
        "request_id": context.aws_request_id,
        "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory_mb": context.memory_limit_in_mb,
    }


def handle_http(event, context):
    """Answers like an HTTP API function: echoes the body and a header."""
    return {
        "statusCode": 201 if event["requestContext"]["http"]["method"] == "POST" else 405,
        "headers": {"content-type": "text/plain", "x-route": event["routeKey"]},
        "body": f"{event['headers'].get('x-probe', '')}:{event['body']}",
    }


def handle_sqs(event, context):
    """Reports the records whose body says 'fail' as batch item failures."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"] if record["body"] == "fail"
        ]
    }


def handle_sqs_with_backoff(event, context):
    """Reports 'fail:<seconds>' records as failures after hiding them that long itself, as the
    real consumer does with its backoff."""
    import boto3

    sqs = boto3.client("sqs")
    failed = []
    for record in event["Records"]:
        if record["body"].startswith("fail:"):
            sqs.change_message_visibility(
                QueueUrl=os.environ["INBOUND_QUEUE_URL"],
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=int(record["body"].split(":")[1]),
            )
            failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}


def handle_sqs_sleeping(event, context):
    """Sleeps the seconds each 'sleep:<seconds>' record says, then succeeds."""
    for record in event["Records"]:
        if record["body"].startswith("sleep:"):
            time.sleep(float(record["body"].split(":")[1]))
    return {"batchItemFailures": []}


def handle_sqs_slowly(event, context):
    """A consumer busy for a minute with every batch."""
    time.sleep(60)
    return {"batchItemFailures": []}
