"""What a tool can leave in the kernel rather than in a file (run by test_runtime_sabotage.py).

``python3 kernel_leftovers.py plant NONCE SECRET`` puts SECRET where it outlives the process
and no directory holds it: the user's keyrings, System V shared memory and message queues, a
POSIX message queue. ``read NONCE`` prints whatever of it another process of the same user
finds there later; ``clean NONCE`` removes it all again (the test's own tidying up).
"""

import ctypes
import json
import os
import platform
import sys

MODE, NONCE = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmat.restype = ctypes.c_void_p
ADD_KEY, REQUEST_KEY, KEYCTL = (248, 249, 250) if platform.machine() == "x86_64" else (217, 218, 219)
KEYCTL_CLEAR, KEYCTL_READ = 7, 11
USER_KEYRING, USER_SESSION_KEYRING = -4, -5
SYSV_KEY = int(NONCE[:7], 16) or 1
IPC_CREAT, IPC_RMID, IPC_NOWAIT = 0o1000, 0, 0o4000
MQ_NAME = f"/agentbot-left-{NONCE}".encode()
DESCRIPTION = f"agentbot-left-{NONCE}".encode()


def errno_or(result):
    return result if result >= 0 else f"errno {ctypes.get_errno()}"


def plant(secret):
    data = secret.encode()
    done = {}
    for name, ring in (("user-keyring", USER_KEYRING), ("user-session-keyring", USER_SESSION_KEYRING)):
        done[name] = errno_or(
            libc.syscall(ADD_KEY, b"user", DESCRIPTION + name.encode(), data, len(data), ring)
        )
    shm = libc.shmget(SYSV_KEY, 4096, IPC_CREAT | 0o600)
    done["sysv-shm"] = errno_or(shm)
    if shm >= 0:
        address = libc.shmat(shm, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, data, len(data))
    msg = libc.msgget(SYSV_KEY, IPC_CREAT | 0o600)
    done["sysv-msg"] = errno_or(msg)
    if msg >= 0:
        message = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(data))
        ctypes.memmove(
            ctypes.addressof(message), ctypes.byref(ctypes.c_long(1)), ctypes.sizeof(ctypes.c_long)
        )
        ctypes.memmove(ctypes.addressof(message) + ctypes.sizeof(ctypes.c_long), data, len(data))
        libc.msgsnd(msg, message, len(data), IPC_NOWAIT)
    queue = libc.mq_open(MQ_NAME, os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK, 0o600, None)
    done["posix-mq"] = errno_or(queue)
    if queue >= 0:
        libc.mq_send(queue, data, len(data), 0)
    print("KERNEL-PLANTED " + json.dumps(done))


def read():
    found = {}
    for name in ("user-keyring", "user-session-keyring"):
        key = libc.syscall(REQUEST_KEY, b"user", DESCRIPTION + name.encode(), None, 0)
        if key >= 0:
            buffer = ctypes.create_string_buffer(4096)
            size = libc.syscall(KEYCTL, KEYCTL_READ, key, buffer, 4096)
            found[name] = buffer.raw[: max(size, 0)].decode(errors="replace")
    shm = libc.shmget(SYSV_KEY, 0, 0)
    if shm >= 0:
        address = libc.shmat(shm, None, 0o10000)  # SHM_RDONLY
        if address not in (None, ctypes.c_void_p(-1).value):
            found["sysv-shm"] = ctypes.string_at(address, 200).split(b"\0")[0].decode(errors="replace")
    msg = libc.msgget(SYSV_KEY, 0)
    if msg >= 0:
        message = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + 4096)
        size = libc.msgrcv(msg, message, 4096, 0, IPC_NOWAIT)
        if size > 0:
            found["sysv-msg"] = message.raw[ctypes.sizeof(ctypes.c_long) :][:size].decode(errors="replace")
    queue = libc.mq_open(MQ_NAME, os.O_RDONLY | os.O_NONBLOCK)
    if queue >= 0:
        buffer = ctypes.create_string_buffer(1 << 16)
        size = libc.mq_receive(queue, buffer, 1 << 16, None)
        found["posix-mq"] = buffer.raw[: max(size, 0)].decode(errors="replace")
    print("KERNEL-FOUND " + json.dumps(found))


def clean():
    for ring in (USER_KEYRING, USER_SESSION_KEYRING):
        libc.syscall(KEYCTL, KEYCTL_CLEAR, ring)
    shm = libc.shmget(SYSV_KEY, 0, 0)
    if shm >= 0:
        libc.shmctl(shm, IPC_RMID, None)
    msg = libc.msgget(SYSV_KEY, 0)
    if msg >= 0:
        libc.msgctl(msg, IPC_RMID, None)
    libc.mq_unlink(MQ_NAME)


if MODE == "plant":
    plant(sys.argv[3])
elif MODE == "read":
    read()
else:
    clean()
