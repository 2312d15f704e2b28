"""The launcher's seccomp program run offline, for aarch64 (production) and x86_64: a small
classic-BPF interpreter evaluates what ``launcher_filter`` builds against seccomp_data made
here. Syscall numbers are written out from the kernel's tables (asm-generic/unistd.h for
aarch64, arch/x86/entry/syscalls/syscall_64.tbl), not taken from the launcher."""

from __future__ import annotations

import struct

import pytest
from agent_runtime._cli_launcher import launcher_filter

ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026
ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
OTHER_ARCHES = (0x40000003, 0x40000028, 0xC00000F3, 0)  # i386, arm (AArch32), riscv64, nonsense
NR = {
    "x86_64": {
        "read": 0,
        "write": 1,
        "openat": 257,
        "clone": 56,
        "execve": 59,
        "getpid": 39,
        "kill": 62,
        "tkill": 200,
        "tgkill": 234,
        "rt_sigqueueinfo": 129,
        "rt_tgsigqueueinfo": 297,
        "fcntl": 72,
        "ioctl": 16,
        "pidfd_open": 434,
        "pidfd_send_signal": 424,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "shmget": 29,
        "shmat": 30,
        "shmctl": 31,
        "shmdt": 67,
        "semget": 64,
        "semop": 65,
        "semctl": 66,
        "semtimedop": 220,
        "msgget": 68,
        "msgsnd": 69,
        "msgrcv": 70,
        "msgctl": 71,
        "mq_open": 240,
        "mq_unlink": 241,
        "mq_timedsend": 242,
        "mq_timedreceive": 243,
        "mq_notify": 244,
        "mq_getsetattr": 245,
        "prlimit64": 302,
    },
    "aarch64": {
        "read": 63,
        "write": 64,
        "openat": 56,
        "clone": 220,
        "execve": 221,
        "getpid": 172,
        "kill": 129,
        "tkill": 130,
        "tgkill": 131,
        "rt_sigqueueinfo": 138,
        "rt_tgsigqueueinfo": 240,
        "fcntl": 25,
        "ioctl": 29,
        "pidfd_open": 434,
        "pidfd_send_signal": 424,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "shmget": 194,
        "shmat": 196,
        "shmctl": 195,
        "shmdt": 197,
        "semget": 190,
        "semop": 193,
        "semctl": 191,
        "semtimedop": 192,
        "msgget": 186,
        "msgsnd": 189,
        "msgrcv": 188,
        "msgctl": 187,
        "mq_open": 180,
        "mq_unlink": 181,
        "mq_timedsend": 182,
        "mq_timedreceive": 183,
        "mq_notify": 184,
        "mq_getsetattr": 185,
        "prlimit64": 261,
    },
}
LEFTOVERS = [
    "add_key",
    "request_key",
    "keyctl",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semctl",
    "semtimedop",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
]
F_SETOWN, F_SETOWN_EX, F_GETOWN, F_SETFL = 8, 15, 9, 4
FIOSETOWN, SIOCSPGRP, TIOCGWINSZ, FIONREAD = 0x8901, 0x8902, 0x5413, 0x541B
RUNTIME, THREADS, GROUP, ANCESTOR, ANCESTOR_GROUP = 4321, [4322, 4330], 4300, 77, 70
PIDS, GROUPS = [RUNTIME, *THREADS, ANCESTOR], [GROUP, ANCESTOR_GROUP]
TOOL, TOOL_GROUP = 5000, 4990  # a tool's own process and group, in the CLI's session
MACHINES = ("aarch64", "x86_64")


def run(program: bytes, data: bytes) -> int:
    """Classic BPF as seccomp runs it: A, the instructions the launcher may emit, any other fails."""
    instructions = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    assert 0 < len(instructions) <= 4096  # BPF_MAXINSNS
    a, pc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        if code == 0x20:  # LD | W | ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:  # ALU | AND | K
            a &= k
        elif code == 0x05:  # JMP | JA
            pc += k
        elif code in (0x15, 0x35, 0x25, 0x45):  # JEQ, JGE, JGT, JSET (| K)
            taken = {0x15: a == k, 0x35: a >= k, 0x25: a > k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # RET | K
            return k
        else:
            raise AssertionError(f"instruction {code:#x} not interpreted")
        assert pc < len(instructions), "ran off the end of the program"


def data(machine: str, call: str | int, *args: int, arch: int | None = None) -> bytes:
    """struct seccomp_data: nr, arch, instruction pointer, six 64-bit arguments."""
    nr = NR[machine][call] if isinstance(call, str) else call
    padded = [arg & 0xFFFFFFFFFFFFFFFF for arg in (*args, 0, 0, 0, 0, 0, 0)[:6]]
    return struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, ARCH[machine] if arch is None else arch, 0x400000, *padded)


@pytest.fixture(params=MACHINES)
def machine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def verdict(machine: str, call: str | int, *args: int, arch: int | None = None) -> int:
    return run(launcher_filter(machine, PIDS, GROUPS), data(machine, call, *args, arch=arch))


@pytest.mark.parametrize("call", LEFTOVERS)
def test_kernel_leftovers_are_refused(machine: str, call: str) -> None:
    assert verdict(machine, call, 0, 0, 0) == EPERM


def test_ordinary_calls_are_allowed(machine: str) -> None:
    for call in ("read", "write", "openat", "clone", "execve", "getpid"):
        assert verdict(machine, call, 3, 0x7FFF0000, 100) == ALLOW, call
    assert verdict(machine, "ioctl", 1, TIOCGWINSZ, 0x7FFF1000) == ALLOW
    assert verdict(machine, "ioctl", 4, FIONREAD, 0x7FFF1000) == ALLOW


def test_other_architectures_are_refused_before_anything_else(machine: str) -> None:
    for arch in OTHER_ARCHES:
        for call in ("read", "kill", "getpid"):
            assert verdict(machine, call, TOOL, 0, arch=arch) == EPERM
    program = launcher_filter(machine, PIDS, GROUPS)
    assert struct.unpack_from("=HBBI", program, 0) == (0x20, 0, 0, 4)  # first: load arch


def test_x32_calls_are_refused_on_x86_64() -> None:
    for nr in (0x40000000 | 0, 0x40000000 | 62, 0x40000000 | 512, 0xFFFFFFFF):
        assert run(launcher_filter("x86_64", PIDS, GROUPS), data("x86_64", nr, TOOL, 9)) == EPERM


@pytest.mark.parametrize("target", [RUNTIME, *THREADS, ANCESTOR, -GROUP, -ANCESTOR_GROUP, -1])
@pytest.mark.parametrize("call", ["kill", "rt_sigqueueinfo"])
def test_signals_to_the_runtime_its_groups_and_everyone_are_refused(
    machine: str, call: str, target: int
) -> None:
    assert verdict(machine, call, target, 9) == EPERM


@pytest.mark.parametrize("target", [TOOL, -TOOL_GROUP, 0, 1, RUNTIME + 100, -RUNTIME])
@pytest.mark.parametrize("call", ["kill", "rt_sigqueueinfo"])
def test_signals_to_others_are_allowed(machine: str, call: str, target: int) -> None:
    assert verdict(machine, call, target, 15) == ALLOW


@pytest.mark.parametrize("target", [RUNTIME, *THREADS, ANCESTOR])
def test_thread_signals_to_the_runtime_are_refused(machine: str, target: int) -> None:
    assert verdict(machine, "tkill", target, 19) == EPERM
    assert verdict(machine, "tgkill", target, target, 19) == EPERM
    assert verdict(machine, "rt_tgsigqueueinfo", target, target, 19) == EPERM


def test_thread_signals_to_a_tool_are_allowed(machine: str) -> None:
    assert verdict(machine, "tkill", TOOL, 19) == ALLOW
    assert verdict(machine, "tgkill", TOOL, TOOL, 19) == ALLOW
    assert verdict(machine, "rt_tgsigqueueinfo", TOOL, TOOL + 1, 19) == ALLOW


def test_arguments_compare_as_the_kernel_truncates_them(machine: str) -> None:
    """pid_t and the commands are 32-bit: the high half of the register is ignored by both."""
    assert verdict(machine, "kill", (0xDEAD << 32) | RUNTIME, 9) == EPERM
    assert verdict(machine, "kill", (0xDEAD << 32) | 0xFFFFFFFF, 9) == EPERM
    assert verdict(machine, "kill", -GROUP, 9) == EPERM  # sign-extended by the caller
    assert verdict(machine, "kill", -GROUP & 0xFFFFFFFF, 9) == EPERM  # zero-extended
    assert verdict(machine, "ioctl", 3, (1 << 32) | FIOSETOWN, 0) == EPERM
    assert verdict(machine, "fcntl", 3, (1 << 32) | F_SETOWN, RUNTIME) == EPERM
    assert verdict(machine, "fcntl", 3, F_SETOWN, (7 << 32) | RUNTIME) == EPERM


def test_pidfd_calls_are_not_implemented(machine: str) -> None:
    assert verdict(machine, "pidfd_open", TOOL, 0) == ENOSYS
    assert verdict(machine, "pidfd_send_signal", 3, 15, 0, 0) == ENOSYS


def test_sigio_owners(machine: str) -> None:
    for owner in (RUNTIME, *THREADS, -GROUP, -ANCESTOR_GROUP):
        assert verdict(machine, "fcntl", 3, F_SETOWN, owner) == EPERM, owner
    for owner in (TOOL, -TOOL_GROUP, 0):
        assert verdict(machine, "fcntl", 3, F_SETOWN, owner) == ALLOW, owner
    assert verdict(machine, "fcntl", 3, F_SETOWN_EX, 0x7FFF0000) == EPERM
    assert verdict(machine, "fcntl", 3, F_GETOWN, 0) == ALLOW
    assert verdict(machine, "fcntl", 3, F_SETFL, RUNTIME) == ALLOW  # the argument is flags
    assert verdict(machine, "ioctl", 3, FIOSETOWN, 0x7FFF0000) == EPERM
    assert verdict(machine, "ioctl", 3, SIOCSPGRP, 0x7FFF0000) == EPERM


def test_resource_limits_of_the_runtime_cannot_be_set(machine: str) -> None:
    """RLIMIT_CPU set low on the runtime makes the kernel SIGKILL it: no signal call needed."""
    for target in (RUNTIME, *THREADS, ANCESTOR):
        assert verdict(machine, "prlimit64", target, 0, 0x7FFF0000, 0) == EPERM
    for target in (0, TOOL):  # ulimit, resource.setrlimit: the caller itself
        assert verdict(machine, "prlimit64", target, 0, 0x7FFF0000, 0) == ALLOW


@pytest.mark.parametrize("threads", [0, 120, 300, 1500])
def test_many_runtime_threads_still_build_a_working_program(machine: str, threads: int) -> None:
    """Every jump fits its 8 bits however many threads the runtime and its ancestors have."""
    pids = [RUNTIME, *range(10_000, 10_000 + threads)]
    program = launcher_filter(machine, pids, GROUPS)
    for pid in {RUNTIME, pids[1 % len(pids)], pids[-1]}:
        for call in ("kill", "tkill"):
            assert run(program, data(machine, call, pid, 9)) == EPERM, (call, pid)
        assert run(program, data(machine, "fcntl", 3, F_SETOWN, pid)) == EPERM
    for call in ("kill", "tkill"):
        assert run(program, data(machine, call, TOOL, 9)) == ALLOW
    assert run(program, data(machine, "kill", -GROUP, 9)) == EPERM
    assert run(program, data(machine, "shmget", 0, 0, 0)) == EPERM
    assert run(program, data(machine, "read", 0, 0, 0)) == ALLOW


def test_a_program_too_long_for_the_kernel_is_an_error_not_no_filter(machine: str) -> None:
    """The kernel answers EINVAL to more than 4096 instructions, which the launcher would take
    for a kernel without seccomp: the builder refuses instead, and the CLI does not start."""
    with pytest.raises(ValueError, match="4096"):
        launcher_filter(machine, list(range(10_000, 14_000)), GROUPS)
