"""Python a test's Bash tool call runs (``python3 -c``) to act on the turn from inside it."""

# Finds the CLI running it: ``cli``, the nearest process up from itself whose program is
# ``claude`` (None if there is none); ``read`` gives a file's bytes, empty when it is gone.
FIND_CLI = r"""
import os
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
pid, cli = os.getpid(), None
while pid > 1 and cli is None:
    if read(f"/proc/{pid}/cmdline").split(b"\0")[0].endswith(b"/claude"):
        cli = pid
    pid = int(read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()[1])
"""

# Kills the CLI running it (the agent's process dies mid-turn: out of memory, a bug).
KILL_CLI = (
    FIND_CLI
    + r"""
import signal
if cli is not None:
    os.kill(cli, signal.SIGKILL)
"""
)
