"""moto's SSM backend without its EC2 import: EC2 loads when a request first needs it.

moto's SSM module imports ``moto.ec2`` at its top for one feature this project never calls
(``send_command`` with ``Targets``, which looks instances up by tag). That import reads EC2's
AMI lists and botocore's whole EC2 service model: 0.8-1 CPU-second on every start of the local
AWS, about 40 % of what `agentbot dev` spends before the first message. Here SSM is imported
once against a stand-in whose ``ec2_backends`` reaches the real one on first use; the stand-in
is gone as soon as SSM's import is done, so everything else (an EC2 request included) imports
the real package as usual. Should a later moto's SSM want more of EC2 at import, SSM is
imported the ordinary way instead: slower, never broken.
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
    """What SSM's module holds as ``ec2_backends``: ``[account]`` (all SSM asks of it) and any
    attribute reach the real one."""

    def __getitem__(self, key: Any) -> Any:
        return _real_backends()[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_backends(), name)


def import_moto_ssm_without_ec2() -> None:
    """Import moto's SSM backend now, with EC2 left for later. Call it before moto serves a
    request: while the stand-in is in place, another thread importing ``moto.ec2`` would get
    it. Does nothing once SSM or EC2 is imported (a process that already paid saves nothing)."""
    with _lock:
        if "moto.ssm.models" in sys.modules or _EC2 in sys.modules:
            return
        stand_in = types.ModuleType(_EC2)
        stand_in.ec2_backends = _LazyBackends()  # type: ignore[attr-defined]
        sys.modules[_EC2] = stand_in
        try:
            importlib.import_module("moto.ssm.models")
        except ImportError:
            # SSM asked the stand-in for more than ``ec2_backends``: forget the half-imported
            # SSM modules, so its first request imports them (and EC2) the ordinary way.
            for name in [name for name in sys.modules if name == "moto.ssm" or name.startswith("moto.ssm.")]:
                del sys.modules[name]
        finally:
            if sys.modules.get(_EC2) is stand_in:
                del sys.modules[_EC2]
