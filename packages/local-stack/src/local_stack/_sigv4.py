"""Check that a request to a local AWS-shaped endpoint was signed (AWS Signature Version 4) with
the one set of credentials `agentbot dev` gave its functions.

The embedded moto server and the local Lambda Invoke API accept any signature by themselves;
in front of them this check makes them refuse whoever does not hold the functions' secret key
(an agent's tool that found the port), as AWS would. Header-signed requests only: the stack
never uses presigned URLs.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class LocalCredentials:
    """An access key pair that exists only for one run of the local stack."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> LocalCredentials:
        """Fresh random credentials (shaped like AWS's, so clients accept them)."""
        return cls("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))

    def environment(self) -> dict[str, str]:
        """The variables a boto3 client of the functions reads them from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def signed_by(
    credentials: LocalCredentials, *, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> bool:
    """True when the request's ``Authorization`` header is a valid SigV4 signature made with
    ``credentials`` over this method, URL, the signed headers and the payload hash it claims."""
    # Here, not at the top: the reaper around every function worker imports this package, and
    # botocore's signing modules would double its start-up.
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lowered = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(lowered.get("authorization", "").strip())
    amz_date = lowered.get("x-amz-date", "")
    if match is None or not amz_date or match["key"] != credentials.access_key_id:
        return False
    signed_names = match["signed"].split(";")
    if "host" not in signed_names or any(name not in lowered for name in signed_names):
        return False
    request = AWSRequest(
        method=method, url=url, headers={name: lowered[name] for name in signed_names}, data=body
    )
    request.context["timestamp"] = amz_date
    signer_class = S3SigV4Auth if match["service"] == "s3" else SigV4Auth
    signer = signer_class(
        Credentials(credentials.access_key_id, credentials.secret_access_key),
        match["service"],
        match["region"],
    )
    try:
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
    except Exception:  # a malformed request cannot be a valid one
        return False
    return hmac.compare_digest(expected, match["signature"])
