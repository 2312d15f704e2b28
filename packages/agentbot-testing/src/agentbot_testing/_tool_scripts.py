"""Python a test's Bash tool call runs (``python3 -c``) to act on the turn from inside it."""

# Kills the CLI running it (the agent's process dies mid-turn: out of memory, a bug): walks up
# from itself to the nearest process whose program is ``claude``.
KILL_CLI = r"""
import os, signal
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
pid = os.getpid()
while pid > 1:
    if read(f"/proc/{pid}/cmdline").split(b"\0")[0].endswith(b"/claude"):
        os.kill(pid, signal.SIGKILL)
        break
    pid = int(read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()[1])
"""
