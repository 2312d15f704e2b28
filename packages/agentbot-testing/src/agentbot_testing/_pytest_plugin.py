"""The pytest plugin every package's tests get (entry point `pytest11`): a local AWS endpoint
that starts itself, fresh resources per test, and no real credentials.

The moto server on 127.0.0.1 always serves DynamoDB (and SSM, STS, ...); S3 and SQS come
from LocalStack, started through testcontainers, when a Docker engine answers and the
LocalStack image is built (infra/images/localstack/build.sh), else from moto too.
`AWS_TEST_BACKEND=moto|localstack` forces one (localstack fails loudly when it cannot start).
The summary at the end says which ran, once, also under pytest-xdist (the workers share one
moto server, started by the controller; each starts its own LocalStack; the workers report
what they used to the controller). Every test gets its own freshly provisioned resources
(unique names), so state never leaks between cases.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from local_stack import (
    LOCAL_CREDENTIALS,
    LocalEndpoints,
    ResourceNames,
    StackResources,
    aws_endpoint,
    local_client,
    moto_process,
    provision,
)

from ._claude_config import claude_config_without_approvals


@dataclass
class LocalAws:
    """One test's AWS: the endpoint, ready clients and the resources provisioned for it."""

    endpoints: LocalEndpoints
    resources: StackResources
    s3: Any
    dynamodb: Any
    sqs: Any

    @property
    def backend(self) -> str:
        return self.endpoints.backend

    @property
    def endpoint(self) -> str:
        """The moto server: DynamoDB and every service LocalStack does not serve."""
        return self.endpoints.default

    def client(self, service: str, **kwargs: Any) -> Any:
        """A client of `service` on this test's endpoints (few retries: failures show fast)."""
        return make_client(service, self.endpoints.url_for(service), **kwargs)


def make_client(service: str, endpoint: str, **kwargs: Any) -> Any:
    """A boto3 client for a local endpoint, with the test stack's retry settings."""
    return local_client(
        service, endpoint, config=Config(retries={"max_attempts": 2, "mode": "standard"}), **kwargs
    )


# What this process started (a worker's, or the only process's without xdist), and what the
# xdist workers reported to the controller.
_started: list[LocalEndpoints] = []
_reported: list[str] = []


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[LocalEndpoints]:
    """The local AWS endpoints, started once per test session (per worker under xdist; the
    workers share one moto server, see ``_share_one_moto_server``)."""
    with aws_endpoint(moto_url=os.environ.get(_SHARED_MOTO_URL) or None) as started:
        _started.append(started)
        yield started


@pytest.fixture(scope="session")
def aws_clients(aws_backend: LocalEndpoints) -> tuple[Any, Any, Any]:
    """The s3, dynamodb and sqs clients every test's `aws` shares (a client costs ~5-10 ms of
    CPU to build; a test that hooks a client's events builds its own with `aws.client`).
    Built, like boto3's default session under them, without the machine's AWS settings."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _forget_machine_aws(monkeypatch)
        s3, dynamodb, sqs = (make_client(s, aws_backend.url_for(s)) for s in ("s3", "dynamodb", "sqs"))
    return s3, dynamodb, sqs


@pytest.fixture
def aws(
    aws_backend: LocalEndpoints, aws_clients: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> LocalAws:
    """Fresh table, bucket and FIFO queues for this test, with the handlers' env vars set."""
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name, value in aws_backend.environment().items():
        monkeypatch.setenv(name, value)
    s3, dynamodb, sqs = aws_clients
    names = ResourceNames(prefix=f"t{uuid.uuid4().hex[:12]}")
    resources = provision(dynamodb=dynamodb, s3=s3, sqs=sqs, names=names)
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    return LocalAws(aws_backend, resources, s3, dynamodb, sqs)


@pytest.fixture(scope="session")
def tools_config() -> Iterator[Path]:
    """The repository's claude-config without approval rules: tools run without asking. In a
    directory of its own that anyone may read (a runtime may run as the unprivileged user)."""
    parent = Path(tempfile.mkdtemp(prefix="agentbot-tools-config-"))
    parent.chmod(0o755)
    try:
        yield claude_config_without_approvals(parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the SDK's loop), never on trio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see credentials or profiles of the machine they run on."""
    _forget_machine_aws(monkeypatch)


def _forget_machine_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_TEST_BACKEND":
            monkeypatch.delenv(name, raising=False)


def pytest_configure(config: pytest.Config) -> None:
    _write_bytecode_once(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Any) -> None:
    """The controller, just before it starts the workers (not for --collect-only or -n 0)."""
    _share_one_moto_server(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_SHARED_MOTO, None)
    if shared is not None:
        shared.close()


# The moto server the xdist workers share, started by the controller; its URL reaches the
# workers (restarted ones too) through their environment. Internal: set by hand, it would be
# trusted.
_SHARED_MOTO = pytest.StashKey[contextlib.ExitStack]()
_SHARED_MOTO_URL = "AGENTBOT_TEST_MOTO_URL"


def _share_one_moto_server(config: pytest.Config) -> None:
    """With xdist workers, one moto server in a process of its own serves them all: moto's
    backends are imported and built once, not once per worker (~3 s of CPU each), and its
    request handling no longer shares a worker's GIL with the tests (the suite: 551 → 473 s of
    CPU). Every test provisions its own resources under unique names; what the workers do
    share is the one-at-a-time lock for DynamoDB, and listings (ask with a prefix: an unnamed
    one stops at 1,000)."""
    if os.environ.get(_SHARED_MOTO_URL):
        return
    shared = contextlib.ExitStack()
    os.environ[_SHARED_MOTO_URL] = shared.enter_context(moto_process())
    shared.callback(os.environ.pop, _SHARED_MOTO_URL, None)
    config.stash[_SHARED_MOTO] = shared


def _write_bytecode_once(config: pytest.Config) -> None:
    """Where PYTHONDONTWRITEBYTECODE is set, bytecode is written once per run (not per xdist
    worker) for the environment and the workspace's own modules: the tests start hundreds of
    processes (`agentbot dev`, function workers, reapers), and each would otherwise compile
    boto3, botocore, moto, the SDK and our packages from source. Up to date, this takes ~0.4 s;
    elsewhere Python writes bytecode on first import and this does nothing. The test modules
    themselves are rewritten by pytest (for its assertion messages), and that too is saved only
    where bytecode may be written: each worker would otherwise redo it (~3 s of CPU a worker)."""
    if not sys.flags.dont_write_bytecode:
        return
    sys.dont_write_bytecode = False
    if hasattr(config, "workerinput"):
        return
    import sysconfig

    from ._bytecode import compile_sources, stale_sources

    environment = Path(sysconfig.get_paths()["purelib"])
    roots = [environment, *config.rootpath.glob("packages/*/src"), config.rootpath / "src"]
    compile_sources(stale_sources(root for root in roots if root.is_dir()))


@pytest.hookimpl(tryfirst=True)  # before stepwise's, which skips by position in this order
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (the CLI, several processes; 5-40 s each) are handed out first,
    the quick ones last. Under ``--dist worksteal`` the first worker's block holds the slow
    ones and the others take from its queue as theirs run dry, so no worker is left at the end
    with a long test while the other cores idle (the suite on 2 cores: ~305-312 s before,
    246-272 s after). The order within each group stays as collected."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fewer garbage collections in the process that runs the tests (an xdist worker, or the
    only process with ``-n 0``): it holds ~0.5 M objects (boto3's and moto's models, the tests'
    data), and with Python's default thresholds the collector walks them over and over (~5 s
    of CPU per worker). Young collections after 50,000 new objects, not 700. (``gc.freeze()``
    after collection was tried: it made full collections more frequent, not cheaper.)"""
    import gc

    gc.set_threshold(50_000, 20, 20)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per CPU — most tests wait on subprocesses (the CLI, awslambdaric,
    `agentbot dev`) and sockets, not on the CPU. `PYTEST_XDIST_AUTO_NUM_WORKERS` still decides."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip()
    if forced.isdigit():
        return int(forced)
    return 2 * len(os.sched_getaffinity(0))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands the controller what it started (the controller prints it)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and _started:
        workeroutput["agentbot_emulator"] = _started[0].describe()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Controller side of xdist: collect each worker's emulator line."""
    described = getattr(node, "workeroutput", {}).get("agentbot_emulator")
    if described:
        _reported.append(described)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which local AWS really ran; `AGENTBOT_EMULATOR_REPORT` also gets the line (CI)."""
    if hasattr(terminalreporter.config, "workerinput"):
        return  # a worker: the controller prints the one line
    described = [endpoints.describe() for endpoints in _started] or _reported
    if not described:
        return
    line = f"emulator: {described[0]}"
    terminalreporter.write_sep("=", line)
    report = os.environ.get("AGENTBOT_EMULATOR_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as out:
            out.write(line + "\n")
