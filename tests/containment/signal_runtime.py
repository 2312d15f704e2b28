"""A tool signals the runtime that runs it (run by test_runtime_signals.py).

Every process here has the runtime's uid, so the kernel lets a tool signal the runtime unless
Landlock (ABI >= 6) or the launcher's seccomp filter refuses it. ``probe`` tries each way with
signal 0 (the kernel's permission check, nothing delivered) and prints ``SIGNAL-PROBE {json}``:
the errno of each call, 0 where it went through. ``stop`` really does it: SIGSTOP to the
runtime, SIGKILL to its process group and to every process of the uid (``kill -KILL -1``), the
tool itself excepted; it prints what each returned (a runtime it stopped cannot answer).
"""

import ctypes
import json
import os
import platform
import signal
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
X86 = platform.machine() == "x86_64"
TKILL, TGKILL, RT_SIGQUEUEINFO = (200, 234, 129) if X86 else (130, 131, 138)
PIDFD_SEND_SIGNAL, PIDFD_OPEN = 424, 434
PTRACE_SEIZE, PTRACE_DETACH, F_SETOWN = 0x4206, 17, 8


def field(pid, name):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return line.split()[1]
    return ""


def runtime_pid():
    """The parent of the CLI: the nearest ancestor called ``claude``."""
    pid = os.getppid()
    while pid > 1:
        parent = int(field(pid, "PPid"))
        if field(pid, "Name").startswith("claude"):
            return parent
        pid = parent
    sys.exit("no CLI among my ancestors")


def result(value):
    return 0 if value >= 0 else ctypes.get_errno()


def call(*args):
    return result(libc.syscall(*args))


def probe(runtime):
    pgrp = os.getpgid(runtime)
    info = ctypes.create_string_buffer(128)
    ctypes.memmove(info, (ctypes.c_int * 3)(0, 0, -1), 12)  # si_signo, si_errno, si_code SI_QUEUE
    seen = {
        "kill runtime": result(libc.kill(runtime, 0)),
        "kill -1": result(libc.kill(-1, 0)),
        "kill runtime's group": result(libc.kill(-pgrp, 0)),
        "same group as runtime": os.getpgrp() == pgrp,
        "same session as runtime": os.getsid(0) == os.getsid(runtime),
        "tkill runtime": call(TKILL, runtime, 0),
        "tgkill runtime": call(TGKILL, runtime, runtime, 0),
        "rt_sigqueueinfo runtime": call(RT_SIGQUEUEINFO, runtime, 0, info),
        "pidfd_open runtime": call(PIDFD_OPEN, runtime, 0),
    }
    try:
        proc = os.open(f"/proc/{runtime}", os.O_RDONLY | os.O_DIRECTORY)
        seen["pidfd_send_signal /proc/runtime"] = call(PIDFD_SEND_SIGNAL, proc, 0, None, 0)
    except OSError as exc:
        seen["pidfd_send_signal /proc/runtime"] = exc.errno
    read, _ = os.pipe()  # SIGIO: a file's owner gets a signal (any, F_SETSIG) on I/O
    seen["fcntl F_SETOWN runtime"] = result(libc.fcntl(read, F_SETOWN, ctypes.c_long(runtime)))
    seen["fcntl F_SETOWN runtime's group"] = result(libc.fcntl(read, F_SETOWN, ctypes.c_long(-pgrp)))
    seized = libc.ptrace(PTRACE_SEIZE, runtime, None, None)
    seen["ptrace seize runtime"] = result(seized)
    if seized == 0:
        libc.ptrace(PTRACE_DETACH, runtime, None, None)
    local = ctypes.create_string_buffer(8)
    iov = (ctypes.c_void_p * 2)(ctypes.addressof(local), 8)
    remote = (ctypes.c_void_p * 2)(0x400000, 8)
    seen["process_vm_readv runtime"] = result(libc.process_vm_readv(runtime, iov, 1, remote, 1, 0))
    threads = [int(t) for t in os.listdir(f"/proc/{runtime}/task") if int(t) != runtime]
    seen["runtime threads"] = len(threads)
    seen["kill a runtime thread (tid)"] = sorted({result(libc.kill(tid, 0)) for tid in threads})
    print("SIGNAL-PROBE " + json.dumps(seen))


def stop(runtime):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pgrp = os.getpgid(runtime)
    done = {"stop runtime": result(libc.kill(runtime, signal.SIGSTOP))}
    done["kill runtime's group"] = result(libc.kill(-pgrp, signal.SIGKILL)) if pgrp != os.getpgrp() else -1
    print("SIGNAL-SENT " + json.dumps(done), flush=True)
    # kill -KILL -1 spares the caller: this tool lives on, unless someone sweeps it.
    done["kill -1"] = result(libc.kill(-1, signal.SIGKILL))
    print("SIGNAL-SENT " + json.dumps(done), flush=True)


(probe if sys.argv[1] == "probe" else stop)(runtime_pid())
