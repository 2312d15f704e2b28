"""Start the Claude Code CLI confined: a clean environment and, where the kernel has Landlock,
a sandbox that the CLI and every tool it runs inherit and cannot leave.

This file is also executed on its own as the SDK's ``cli_path`` (``install_cli_launcher``
writes it with a ``#!python -IS`` line), so it uses the standard library only and imports
nothing of agent_runtime. What it reads from its environment (set by ``build_cli_environment``):

- ``AGENTBOT_CLI_PATH``: the real CLI; ``AGENTBOT_CLI_ENV_NAMES``: the variables the CLI keeps;
- ``AGENTBOT_SANDBOX``: JSON ``{"landlock": bool, "write": [paths], "connect": [tcp ports]}``.

Landlock (a kernel feature, no privileges needed, inherited across fork and exec):
- writes (create, delete, rename, truncate, write) only beneath the ``write`` paths plus a few
  device files; reads stay open (other sessions' files are removed before each turn);
- TCP ``connect`` only to the ``connect`` ports (ABI >= 4): the model proxy, 443/80, HTTP MCP
  servers; so Lambda's Runtime API (127.0.0.1:9001) and local services are out of reach;
- no signals to, and no abstract unix sockets of, processes outside the sandbox (ABI >= 6);
- ptrace and ``/proc/<pid>/mem`` / ``environ`` of processes outside it are refused (ABI >= 1).

Installed under the name ``bash`` it is the tools' shell instead (the CLI's
``CLAUDE_CODE_SHELL``): it adds one more Landlock layer, then runs the real bash. Every Bash
tool call then runs in a domain nested in the CLI's, and Landlock refuses a process access to
processes of an enclosing domain (ptrace, ``/proc/<pid>/fd``, ``pidfd_getfd``). So a
tool cannot open the CLI's pipes to the runtime through ``/proc`` and speak for the CLI: forge
its answer, its cost or its session id, or answer its permission requests.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
from collections.abc import Callable

# Generic syscall numbers: the same on x86_64 and aarch64.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

_WRITE_FILE = 1 << 1
_WRITE_ACCESS_BY_ABI = {
    # remove dir/file, make char/dir/reg/sock/fifo/block/sym
    1: _WRITE_FILE | sum(1 << bit for bit in range(4, 13)),
    2: 1 << 13,  # refer (link/rename across directories)
    3: 1 << 14,  # truncate
    5: 1 << 15,  # ioctl on devices
}
_MAKE_BLOCK = 1 << 11  # make block devices: nobody here may anyway
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
# Device files every shell needs to write to.
# Not /dev/shm: Lambda has none, and elsewhere it is shared by every chat and never emptied.
_WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/pts")
_O_PATH = getattr(os, "O_PATH", 0o10000000)
TOOL_SHELL_NAME = "bash"  # the CLI takes a shell only if its path says bash or zsh
_REAL_SHELLS = ("/bin/bash", "/usr/bin/bash", "/usr/local/bin/bash")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (or it is disabled)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _write_access(abi: int) -> int:
    return sum(bits for level, bits in _WRITE_ACCESS_BY_ABI.items() if abi >= level)


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock {what}: {os.strerror(errno)}")
    return result


def apply_landlock(write_paths: list[str], connect_ports: list[int]) -> int:
    """Confine this process (and all it will start) as described above; returns the ABI used
    (0: no Landlock, nothing done)."""
    abi = landlock_abi()
    if abi < 1:
        return 0
    write = _write_access(abi)
    net = _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", write, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]

    def add_rules(libc: ctypes.CDLL, ruleset: int) -> None:
        for path in [*write_paths, *_WRITABLE_DEVICES]:
            try:
                fd = os.open(path, _O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a device this system lacks
            try:
                # Directories get every write right; a file only those that apply to files.
                allowed = write if os.path.isdir(path) else write & (_WRITE_FILE | (1 << 14) | (1 << 15))
                rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd), 12)
                _check(libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0), f"path {path}")
            finally:
                os.close(fd)
        for port in connect_ports if net else []:
            rule = ctypes.create_string_buffer(struct.pack("=QQ", _NET_CONNECT_TCP, port), 16)
            _check(libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, rule, 0), f"port {port}")

    _restrict_self(attr, add_rules)
    return abi


def nest_domain() -> int:
    """One more Landlock layer on this process, adding no rule of its own (only block devices,
    which nobody here may make): a domain nested in the one it is in, whose processes cannot
    reach the enclosing domain's (ptrace-class access). No scopes: a later Bash call may still
    signal what an earlier one left running. Returns the ABI (0: no Landlock)."""
    abi = landlock_abi()
    if abi >= 1:
        _restrict_self(struct.pack("=Q", _MAKE_BLOCK), lambda libc, ruleset: None)
    return abi


def _restrict_self(attr: bytes, add_rules: Callable[[ctypes.CDLL, int], None]) -> None:
    """Create a ruleset handling what ``attr`` says, let ``add_rules`` fill it, and enforce it
    on this process (a new Landlock layer)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(libc.syscall(_SYS_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0), "ruleset")
    try:
        add_rules(libc, ruleset)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0), "restrict_self")
    finally:
        os.close(ruleset)


def run_tool_shell(argv: list[str]) -> None:
    """The tools' shell: nest a domain (refusing to run a tool outside one), then the real bash.
    Without Landlock there is nothing to nest and it is only bash: the runtime installs it as
    the CLI's shell only where Landlock enforces (``_environment``)."""
    try:
        nest_domain()
    except OSError as exc:  # e.g. too many layers: no tool runs unconfined from the CLI
        sys.stderr.write(f"tool shell: cannot confine this command ({exc})\n")
        sys.exit(126)
    me = os.path.realpath(argv[0] if os.sep in argv[0] else __file__)
    for shell in _REAL_SHELLS:
        if os.access(shell, os.X_OK) and os.path.realpath(shell) != me:
            os.execv(shell, [shell, *argv[1:]])
    sys.stderr.write(f"tool shell: no bash in {', '.join(_REAL_SHELLS)}\n")
    sys.exit(127)


def clean_environment(environ: dict[str, str]) -> dict[str, str]:
    """Only the variables the runtime named for the CLI, nothing inherited by accident."""
    names = environ.get("AGENTBOT_CLI_ENV_NAMES", "").split()
    return {name: environ[name] for name in names if name in environ}


def main(argv: list[str]) -> None:
    """Confine this process, then become the CLI with its clean environment."""
    environ = dict(os.environ)
    cli = environ["AGENTBOT_CLI_PATH"]
    sandbox = json.loads(environ.get("AGENTBOT_SANDBOX") or "{}")
    # The SDK points CLAUDE_CONFIG_DIR at a fresh copy of the transcript when it resumes.
    writable = [str(p) for p in sandbox.get("write", [])] + [environ.get("CLAUDE_CONFIG_DIR", "")]
    if sandbox.get("landlock", True):
        apply_landlock([p for p in writable if p], [int(p) for p in sandbox.get("connect", [])])
    os.execve(cli, [cli, *argv[1:]], clean_environment(environ))


if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == TOOL_SHELL_NAME:
        run_tool_shell(sys.argv)
    main(sys.argv)
