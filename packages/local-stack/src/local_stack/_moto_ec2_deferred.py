"""moto's SSM backend without its EC2 import: EC2 loads when a request first needs it.

moto's SSM module imports ``moto.ec2`` at its top for two features this project never calls
(maintenance-window targets and ``aws:ec2:image`` parameters). That import reads EC2's AMI
lists and botocore's whole EC2 service model: ~1 CPU-second on every start of the local AWS,
about 40 % of what `agentbot dev` spends before the first message. Here SSM is imported once
against a stand-in whose ``ec2_backends`` reaches the real one on first use; the stand-in is
gone as soon as SSM's import is done, so everything else (an EC2 request included) imports the
real package as usual.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_EC2 = "moto.ec2"
_lock = threading.Lock()


def _real_backends() -> Any:
    return importlib.import_module(_EC2).ec2_backends


class _LazyBackends:
    """What SSM's module holds as ``ec2_backends``: every use reaches the real one."""

    def __getitem__(self, key: Any) -> Any:
        return _real_backends()[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_backends(), name)

    def __iter__(self) -> Any:
        return iter(_real_backends())

    def __contains__(self, key: Any) -> bool:
        return key in _real_backends()

    def __len__(self) -> int:
        return len(_real_backends())


def import_moto_ssm_without_ec2() -> None:
    """Import moto's SSM backend now, with EC2 left for later. Does nothing once SSM or EC2 is
    imported (in a process that already paid, there is nothing to save)."""
    with _lock:
        if "moto.ssm.models" in sys.modules or _EC2 in sys.modules:
            return
        stand_in = types.ModuleType(_EC2)
        stand_in.ec2_backends = _LazyBackends()  # type: ignore[attr-defined]
        sys.modules[_EC2] = stand_in
        try:
            importlib.import_module("moto.ssm.models")
        finally:
            if sys.modules.get(_EC2) is stand_in:
                del sys.modules[_EC2]
