"""SSM as a new container of a function meets it, behind the fault-injecting proxy: no secret
read yet (the process's secret cache emptied) and every SSM call through the proxy, so a test can
refuse a parameter (``proxy.faults``); and the JSON log lines such a function writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from session_core import _secrets

from ._fault_proxy import FaultProxy


@contextmanager
def new_container_ssm(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """SSM through a FaultProxy (no fault yet), with no secret read by this process yet."""
    monkeypatch.setattr(_secrets, "_cache", {})
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", proxy.endpoint)
        yield proxy


def json_log_lines(capsys: Any) -> list[dict[str, Any]]:
    """The JSON log lines written since the last read (a function's lines in Lambda's form)."""
    out, err = capsys.readouterr()
    return [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
