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

Whatever the kernel's Landlock, a seccomp filter refuses (EPERM) the system calls of what
outlives a process without lying in any directory: the kernel keyrings (the user's keyrings
are one per uid, shared by every later turn), System V shared memory, semaphores and message
queues, and POSIX message queues. Landlock covers none of them and the runtime empties
directories only: one chat's tool could leave its chat's files there for the next chat's.
The same filter keeps the runtime (the launcher's parent) out of a tool's signals without
Landlock's signal scope (ABI 6): every process here has the runtime's uid, so a tool could stop
or kill it (``kill -STOP``, ``kill -KILL -1``, its process group, a pidfd, SIGIO, or a CPU-time
limit set on it with ``prlimit``), and a stopped runtime sweeps nothing. The launcher starts
the CLI in a session of its own for the same reason.

Installed under the name ``bash`` it is the tools' shell instead (the CLI's
``CLAUDE_CODE_SHELL``): it adds one more Landlock layer, then runs the real bash. Every Bash
tool call then runs in a domain nested in the CLI's, and Landlock refuses a process access to
processes of an enclosing domain (ptrace, ``/proc/<pid>/fd``, ``pidfd_getfd``). So a
tool cannot open the CLI's pipes to the runtime through ``/proc`` and speak for the CLI: forge
its answer, its cost or its session id, or answer its permission requests.
"""

from __future__ import annotations

import contextlib
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


# The system calls refused, by architecture (x86_64; aarch64 has the generic numbers).
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_KERNEL_LEFTOVER_CALLS = {
    # shmget shmat shmctl semget semop semctl msgget msgsnd msgrcv msgctl shmdt semtimedop
    # mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr add_key request_key keyctl
    "x86_64": (29, 30, 31, 64, 65, 66, 68, 69, 70, 71, 67, 220, *range(240, 246), 248, 249, 250),
    "aarch64": (*range(180, 198), 217, 218, 219),
}
# The calls that signal a process, by what their first argument names:
# a pid, -1 or a process group (kill, rt_sigqueueinfo); a thread group or a thread (tgkill,
# rt_tgsigqueueinfo, tkill); a pidfd, which may be any /proc/<pid> directory (pidfd_*).
# prlimit64 counts among them: RLIMIT_CPU set low on the runtime has the kernel SIGKILL it.
_SIGNAL_CALLS: dict[str, dict[str, tuple[int, ...]]] = {
    "x86_64": {"any": (62, 129), "pid": (234, 297, 200, 302), "pidfd": (424, 434), "fcntl": (72,)},
    "aarch64": {"any": (129, 138), "pid": (131, 240, 130, 261), "pidfd": (424, 434), "fcntl": (25,)},
}
_IOCTL = {"x86_64": 16, "aarch64": 29}
# fcntl F_SETOWN names who gets SIGIO (or any signal, F_SETSIG) on a file's I/O; F_SETOWN_EX
# and the ioctls FIOSETOWN / SIOCSPGRP do the same through a pointer the filter cannot read.
_F_SETOWN, _F_SETOWN_EX, _OWNER_IOCTLS = 8, 15, (0x8901, 0x8902)
_X32_BIT = 0x40000000  # x86_64's x32 ABI: numbers with this bit set (refused wholesale)
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_RET_ALLOW, _RET_EPERM, _RET_ENOSYS = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
_LD_W_ABS, _JEQ_K, _JGE_K, _JA, _RET_K = 0x20, 0x15, 0x35, 0x05, 0x06
_NR, _ARCH, _ARG = 0, 4, 16  # offsets in seccomp_data; an argument's low 32 bits (little-endian)
_BPF_MAXINSNS, _CHUNK = 4096, 200


def runtime_processes(pid: int) -> tuple[list[int], list[int]]:
    """The processes a tool must not signal: ``pid`` (the runtime, the launcher's parent) and
    its ancestors of the same uid, each with its threads as they are now; and their process
    groups. (-1 and pid 0 of the launcher's own session reach none of them.)"""
    uid, pids, groups = os.getuid(), [], []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if int(fields["Uid"].split()[1]) != uid:  # effective uid
                break
            pids += [pid, *(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)]
            groups.append(os.getpgid(pid))
            pid = int(fields["PPid"])
        except (OSError, KeyError, ValueError):
            break
    return sorted(set(pids)), sorted(set(groups))


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


_Step = tuple[int, int, str, str]  # code, k, label if true (or ""), label if false (or "")


def _assemble(steps: list[_Step | str]) -> bytes:
    """Classic BPF from steps and labels (strings); a jump counts from the next instruction and
    goes forward only. ValueError: a conditional jump beyond 255, or a program the kernel refuses."""
    at: dict[str, int] = {}
    for step in steps:
        if isinstance(step, str):
            at[step] = sum(not isinstance(s, str) for s in steps[: steps.index(step)])
    program, index = [], 0
    for step in steps:
        if isinstance(step, str):
            continue
        code, k, true, false = step
        if code == _JA:
            program.append(_bpf(code, at[true] - index - 1))
        else:
            jt, jf = (at[label] - index - 1 if label else 0 for label in (true, false))
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise ValueError(f"seccomp: a jump of {jt} or {jf} instructions (0 to 255)")
            program.append(_bpf(code, k, jt, jf))
        index += 1
    if index > _BPF_MAXINSNS:
        raise ValueError(f"seccomp: {index} instructions, the kernel takes {_BPF_MAXINSNS}")
    return b"".join(program)


def _refuse_any_of(values: list[int], name: str) -> list[_Step | str]:
    """EPERM when A is one of ``values``, else on to what follows: in chunks, each with its own
    return, so no conditional jump grows with the number of values (8 bits: 255 at most)."""
    steps: list[_Step | str] = []
    for start in range(0, len(values), _CHUNK):
        hit, miss = f"{name}-{start}-eperm", f"{name}-{start}-next"
        steps += [*((_JEQ_K, k, hit, "") for k in values[start : start + _CHUNK]), (_JA, 0, miss, "")]
        steps += [hit, (_RET_K, _RET_EPERM, "", ""), miss]
    return steps


def launcher_filter(machine: str, pids: list[int], groups: list[int]) -> bytes:
    """The seccomp program (classic BPF) for the CLI and every tool: EPERM for
    ``_KERNEL_LEFTOVER_CALLS`` and any other architecture's calls (32-bit ``int 0x80`` on
    x86_64, for one); EPERM for a signal to ``pids`` (also through SIGIO) or ``groups``, or to
    every process (-1), and for setting the resource limits of ``pids``; ENOSYS for the pidfd
    calls (so programs fall back to ``kill``). ValueError: too many ``pids`` for one program."""
    calls = _SIGNAL_CALLS[machine]
    low = [pid & 0xFFFFFFFF for pid in pids]
    negative = [-group & 0xFFFFFFFF for group in groups]
    x32 = _X32_BIT if machine == "x86_64" else 0xFFFFFFFF
    # Fixed-size blocks first, then the lists of pids and groups, reached by JA (32-bit jumps):
    # a conditional jump never crosses a list.
    steps: list[_Step | str] = [
        (_LD_W_ABS, _ARCH, "", ""),
        (_JEQ_K, _AUDIT_ARCH[machine], "", "eperm"),
        (_LD_W_ABS, _NR, "", ""),
        (_JGE_K, x32, "eperm", ""),
        *((_JEQ_K, nr, "eperm", "") for nr in _KERNEL_LEFTOVER_CALLS[machine]),
        *((_JEQ_K, nr, "enosys", "") for nr in calls["pidfd"]),
        (_JEQ_K, _IOCTL[machine], "ioctl", ""),
        *((_JEQ_K, nr, "fcntl", "") for nr in calls["fcntl"]),
        *((_JEQ_K, nr, "any", "") for nr in calls["any"]),
        *((_JEQ_K, nr, "pid", "") for nr in calls["pid"]),
        (_RET_K, _RET_ALLOW, "", ""),
        "ioctl",
        (_LD_W_ABS, _ARG + 8, "", ""),
        *((_JEQ_K, k, "eperm", "") for k in _OWNER_IOCTLS),
        (_RET_K, _RET_ALLOW, "", ""),
        "fcntl",
        (_LD_W_ABS, _ARG + 8, "", ""),
        (_JEQ_K, _F_SETOWN_EX, "eperm", ""),
        (_JEQ_K, _F_SETOWN, "", "fcntl-allow"),
        (_LD_W_ABS, _ARG + 16, "", ""),
        (_JA, 0, "groups", ""),
        "fcntl-allow",
        (_RET_K, _RET_ALLOW, "", ""),
        "any",
        (_LD_W_ABS, _ARG, "", ""),
        (_JEQ_K, 0xFFFFFFFF, "eperm", ""),
        (_JA, 0, "groups", ""),
        "pid",
        (_LD_W_ABS, _ARG, "", ""),
        (_JA, 0, "pids", ""),
        "eperm",
        (_RET_K, _RET_EPERM, "", ""),
        "enosys",
        (_RET_K, _RET_ENOSYS, "", ""),
        "groups",
        *_refuse_any_of(negative, "groups"),
        "pids",
        *_refuse_any_of(low, "pids"),
        (_RET_K, _RET_ALLOW, "", ""),
    ]
    return _assemble(steps)


def install_launcher_filter(runtime: int) -> bool:
    """Install ``launcher_filter`` protecting ``runtime_processes(runtime)`` on this process
    (inherited by all it starts, across exec). False where the kernel or the machine has no
    seccomp filters for it."""
    machine = os.uname().machine
    if machine not in _KERNEL_LEFTOVER_CALLS:
        return False
    program = launcher_filter(machine, *runtime_processes(runtime))
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(instructions))
    libc = _libc()
    if (
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        or libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0) != 0
    ):
        errno = ctypes.get_errno()
        if errno == 22:  # EINVAL: a kernel without seccomp filters
            return False
        raise OSError(errno, f"seccomp: {os.strerror(errno)}")
    return True


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
    runtime = os.getppid()
    # pid 0 (this session's group) then never reaches the runtime's group; an OSError: already
    # a group leader (the SDK started it in a group of its own)
    with contextlib.suppress(OSError):
        os.setsid()
    install_launcher_filter(runtime)
    os.execve(cli, [cli, *argv[1:]], clean_environment(environ))


if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == TOOL_SHELL_NAME:
        run_tool_shell(sys.argv)
    main(sys.argv)
