"""The test stack provisions the same resources the template declares, on a real HTTP endpoint."""

from __future__ import annotations

import json

from local_stack import MAX_RECEIVE_COUNT, TTL_ATTRIBUTE


def test_provisioned_stack_has_fifo_redrive_ttl_and_lifecycle(aws) -> None:
    res = aws.resources
    attrs = aws.sqs.get_queue_attributes(QueueUrl=res.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "false"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == res.dlq_arn
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    ttl = aws.dynamodb.describe_time_to_live(TableName=res.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TTL_ATTRIBUTE and ttl["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=res.bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] > 25
    assert aws.endpoint.startswith("http://127.0.0.1:") or aws.backend == "localstack"


_SSM_THEN_EC2 = """
import json, sys
from local_stack import local_client, moto_endpoint

with moto_endpoint() as url:
    def client(service):
        return local_client(service, url)
    ssm = client("ssm")
    ssm.put_parameter(Name="/agentbot/x", Value="v1", Type="SecureString")
    value = ssm.get_parameter(Name="/agentbot/x", WithDecryption=True)["Parameter"]["Value"]
    ec2_loaded_by_ssm = "moto.ec2" in sys.modules
    # SSM's own use of EC2 (a command sent to instances by tag) reaches EC2's real backends
    client("ec2").run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "x"}]}],
    )
    command = ssm.send_command(
        DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]},
        Targets=[{"Key": "tag:Name", "Values": ["x"]}],
    )["Command"]
    print(json.dumps({
        "value": value, "ec2_loaded_by_ssm": ec2_loaded_by_ssm, "targets": command["TargetCount"],
    }))
"""


def _answer_of(script: str) -> dict[str, object]:
    """Run ``script`` in a new interpreter (nothing of moto imported yet); its last line, as JSON."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return answer


def test_ssm_answers_without_loading_ec2_and_ec2_still_answers_when_asked() -> None:
    """moto's SSM would import its EC2 package (~1 CPU-second per start of the local AWS);
    the server defers that to the first request that needs EC2, which still gets its answer,
    SSM's own use of EC2 included."""
    answer = _answer_of(_SSM_THEN_EC2)
    assert answer["value"] == "v1"
    assert answer["ec2_loaded_by_ssm"] is False
    assert answer["targets"] == 1


_SSM_WANTS_MORE_OF_EC2 = """
import importlib, json, sys
import moto.core
from local_stack._moto_ec2_deferred import import_moto_ssm_without_ec2

class WantsMore:
    # A later moto whose SSM module asks the stand-in for more than ec2_backends, once.
    failed = False
    def find_spec(self, name, path=None, target=None):
        if name == "moto.ssm.models" and not WantsMore.failed:
            WantsMore.failed = True
            raise ImportError("cannot import name 'something_else' from 'moto.ec2'")
        return None

sys.meta_path.insert(0, WantsMore())
import_moto_ssm_without_ec2()
left = sorted(name for name in sys.modules if name.startswith(("moto.ssm", "moto.ec2")))
models = importlib.import_module("moto.ssm.models")  # the ordinary way, EC2 and all
print(json.dumps({"left": left, "ec2_is_real": hasattr(sys.modules["moto.ec2"], "__path__"),
                  "ssm_has_backends": hasattr(models, "ssm_backends")}))
"""


def test_a_moto_whose_ssm_wants_more_of_ec2_still_gets_ssm_the_ordinary_way() -> None:
    answer = _answer_of(_SSM_WANTS_MORE_OF_EC2)
    assert answer == {"left": [], "ec2_is_real": True, "ssm_has_backends": True}


def test_responses_keep_moto_request_ids_in_headers_and_xml_bodies() -> None:
    """The request-id stamping skips the body scan where no ``<RequestId>`` can be: every
    response still carries its id, an XML body the same one, and a big JSON body arrives as
    stored, byte for byte."""
    import httpx
    from local_stack import local_client, moto_endpoint

    with moto_endpoint() as url:
        dynamodb = local_client("dynamodb", url)
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        blob = bytes(range(256)) * 1500  # 384 KB: base64 in a 512 KB JSON body
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "k"}, "data": {"B": blob}})
        got = dynamodb.get_item(TableName="t", Key={"pk": {"S": "k"}}, ConsistentRead=True)
        assert got["Item"]["data"]["B"] == blob
        assert len(got["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]) == 52

        scope = "test/20260101/us-east-1/sts/aws4_request"
        signed = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=x"
        xml = httpx.post(
            url,
            content="Action=GetCallerIdentity&Version=2011-06-15",
            headers={"Authorization": signed, "Content-Type": "application/x-www-form-urlencoded"},
        )
        request_id = xml.headers["x-amzn-requestid"]
        assert len(request_id) == 52 and f"<RequestId>{request_id}</RequestId>" in xml.text
