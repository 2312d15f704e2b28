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

# Kills the CLI running it (the agent's process dies mid-turn: out of memory, a bug), once
# the CLI has saved the step that called this tool: it writes each entry to its transcript
# file, then mirrors it to the store, in batches of its own. Killed sooner (a loaded machine),
# the step's text is lost too, which is what a crash may do but not what these tests are about.
KILL_CLI = (
    FIND_CLI
    + r"""
import glob, signal, time
mark = b"os.kill(cli, signal" + b".SIGKILL)"  # this script's own line, saved with its tool call
files = os.path.join(os.environ.get("CLAUDE_CONFIG_DIR", "/nonexistent"), "projects", "*", "*.jsonl")
deadline = time.monotonic() + 10
while time.monotonic() < deadline and not any(mark in read(f) for f in glob.glob(files)):
    time.sleep(0.05)
time.sleep(0.2)  # the mirror frame follows the write
if cli is not None:
    os.kill(cli, signal.SIGKILL)
"""
)
