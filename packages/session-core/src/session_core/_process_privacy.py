"""What every process holding a secret does so that the agent's tools, running as the same
user, cannot read it: recognise secret variables (never handed to a child) and make itself
non-dumpable (no ``/proc/<pid>/mem``, ``environ`` or ptrace for other processes of the uid)."""

from __future__ import annotations

import ctypes
import os
import re

AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
_PR_SET_DUMPABLE = 4


def is_secret_variable(name: str) -> bool:
    """True for an environment variable the CLI and the agent's tools must never see. A
    ``*_PARAMETER`` variable names the SSM parameter that holds a secret: a name, not a secret."""
    if name.endswith("_PARAMETER"):
        return False
    return name in AWS_CREDENTIAL_VARIABLES or bool(_SECRET_NAME.search(name))


def make_non_dumpable() -> None:
    """Refuse other same-uid processes this process's memory, environment and ptrace.

    The flag is reset by every exec, so each process that holds a secret calls this itself,
    early. Raises OSError if the kernel refuses (it does not on Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0): {os.strerror(errno)}")
