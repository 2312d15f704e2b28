"""A tool cannot break the runtime for the chats that come after it in a warm container.

Tools run as the runtime's own uid and Landlock does not cover chmod: a tool can take our
rights away on the directories the runtime owns (the sessions root, the launcher's ``.bin``,
the launcher itself), or nest directories thousands deep where the next turn has to size or
remove them (past Python's recursion limit and PATH_MAX). Each of these used to make every later
turn in that container fail, other chats' too. The scripted model runs ``bash: CMD`` prompts
as Bash tool calls; everything runs with Landlock and without.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_runtime._owned_trees import remove_tree

from tests.containment.support import ROOT_ONLY_REASON, WRITE_200_MIB, bash_scripted_runtime, runtime_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON),
]
SABOTEUR, OTHER, THIRD = "default/1111/0", "default/2222/0", "default/3333/0"
SABOTAGE_MODEL_KEY = "sk-ant-sabotage-MODEL-KEY-0099"
# Each runs in the saboteur's work directory (its cwd), as the agent's user.
NEST_3000_DEEP = (
    "python3 -c \"import os\nfor _ in range(3000):\n    os.mkdir('d'); os.chdir('d')\n"
    "open('f', 'w').write('x')\" && mkdir -p locked/in && chmod 000 locked/in locked"
)
LOCK_SESSIONS_ROOT = 'chmod 000 "$(cd ../.. && pwd)"'
LOCK_LAUNCHER = (
    'B="$(cd ../../.bin && pwd)" && chmod 600 "$B/claude-confined" && chmod 000 "$B/tool-shell" "$B"'
)


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_that_locks_or_nests_the_runtimes_directories_breaks_no_later_turn(
    landlock: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-sabotage-"))
    sessions_root = scratch / "sessions"
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY
        ) as runtime:
            runtime.turn(SABOTEUR, 1, f"bash: {NEST_3000_DEEP}")
            (saboteurs,) = [p for p in sessions_root.iterdir() if not p.name.startswith(".")]
            nested = (saboteurs / "work" / "d" / "d").is_dir() and (saboteurs / "work" / "locked").exists()
            after_nesting = runtime.turn(OTHER, 2, "hello")  # removes the saboteur's directory
            left = [p for p in sessions_root.iterdir() if not p.name.startswith(".")]
            runtime.turn(SABOTEUR, 3, f"bash: {LOCK_SESSIONS_ROOT}")
            root_locked = stat.S_IMODE(sessions_root.stat().st_mode) == 0
            after_locked_root = runtime.turn(OTHER, 4, "hello again")
            runtime.turn(SABOTEUR, 5, f"bash: {LOCK_LAUNCHER}")
            bin_locked = stat.S_IMODE((sessions_root / ".bin").stat().st_mode) == 0
            after_locked_bin = runtime.turn(THIRD, 6, "hello")
            saboteur_again = runtime.turn(SABOTEUR, 7, "still there?")
    finally:
        remove_tree(scratch)  # shutil.rmtree of Python 3.11 cannot: the tree is 3,000 deep

    assert nested and root_locked and bin_locked  # the sabotage ran (else this proves nothing)
    for later in (after_nesting, after_locked_root, after_locked_bin, saboteur_again):
        assert later.ok, later
    assert after_nesting.text == "answer after 0 earlier turns"
    assert after_locked_root.text == "answer after 1 earlier turns"
    assert after_locked_bin.text == "answer after 0 earlier turns"
    # Its history is in the store (turns 1, 3 and 5), but without Landlock maybe not the turn
    # whose tool locked the sessions root: the CLI queues its transcript writes, and those
    # that run while the root is locked fail, so nothing of that turn may reach the store
    # (the saboteur's own history only; the runtime logs turn.history_not_kept).
    kept = {"answer after 3 earlier turns"} | (set() if landlock else {"answer after 2 earlier turns"})
    assert saboteur_again.text in kept, saboteur_again.text
    # and the operator is told when it happened, only then
    not_kept = [line for line in capfd.readouterr().err.splitlines() if "turn.history_not_kept" in line]
    assert len(not_kept) == (saboteur_again.text != "answer after 3 earlier turns"), not_kept
    assert saboteurs not in left and len(left) == 1, left  # the 3,000-deep tree went with it


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_what_a_tool_leaves_in_the_system_temp_dir_is_gone_before_another_chats_turn(landlock: bool) -> None:
    """In Lambda the only writable place is /tmp. Without Landlock a tool may write there,
    outside its session; the next chat's tools must not find it (nor the disk stay full)."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-strays-"))
    # As in Lambda, where /tmp is all the function's: the sessions root's parent is the user's.
    record = pwd.getpwnam(user)
    os.chown(scratch, record.pw_uid, record.pw_gid)
    left = Path(tempfile.gettempdir()) / f"agentbot-left-by-a-tool-{uuid.uuid4().hex[:8]}"
    beside = scratch / "beside-the-sessions"
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY
        ) as runtime:
            runtime.turn(
                SABOTEUR,
                1,
                f"bash: mkdir -p {left}/d {beside} && echo chat-one-secret > {left}/d/note"
                f" && echo chat-one-secret > {beside}/note",
            )
            written = (left / "d" / "note").exists() and (beside / "note").exists()
            read = runtime.turn(OTHER, 2, f"bash: cat {left}/d/note {beside}/note || echo NOTHING-THERE")
    finally:
        remove_tree(scratch)
        remove_tree(left)

    assert written != landlock  # without Landlock the write outside the session succeeded
    assert read.ok and "chat-one-secret" not in read.text and "NOTHING-THERE" in read.text, read


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_what_a_tool_leaves_in_the_kernel_outside_any_file_is_out_of_another_chats_reach(
    landlock: bool,
) -> None:
    """The user's keyrings, System V shared memory and message queues and POSIX message queues
    outlive the process that filled them, lie in no directory the runtime empties, and Landlock
    covers none of them: one chat's tool could leave its chat's files there for the next chat's
    tools to read (two chats an injection reached, say, one of them the attacker's own)."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-kernel-"))
    scripts = Path(tempfile.mkdtemp(prefix="agentbot-kernel-scripts-"))
    shutil.copy(Path(__file__).with_name("kernel_leftovers.py"), scripts / "kernel_leftovers.py")
    scripts.chmod(0o755)
    nonce = uuid.uuid4().hex
    secret = f"chat-one-kernel-secret-{nonce}"
    script = f"python3 {scripts / 'kernel_leftovers.py'}"
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY
        ) as runtime:
            planted = runtime.turn(SABOTEUR, 1, f"bash: {script} plant {nonce} {secret}")
            read = runtime.turn(OTHER, 2, f"bash: {script} read {nonce}")
    finally:
        subprocess.run([*script.split(), "clean", nonce], user=user, check=False)
        remove_tree(scratch)
        remove_tree(scripts)

    assert planted.ok and "KERNEL-PLANTED" in planted.text, planted  # the tool ran
    assert read.ok and "KERNEL-FOUND" in read.text, read
    assert secret not in read.text, read.text


# Where any user may write on a Linux machine (Lambda has only /tmp, `agentbot dev` the rest too).
SHARED_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


@pytest.mark.parametrize("scope", ["uid", "descendants"], ids=["as-lambda", "as-agentbot-dev"])
@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_what_a_tool_leaves_in_any_shared_temp_dir_is_gone_before_another_chats_turn(
    landlock: bool, scope: str
) -> None:
    """Without Landlock a tool may write wherever its user may: every shared temp dir, not only
    the system's. Nor does `agentbot dev` run alone (its agent's user is the machine's
    ``nobody``), so it cannot empty them of everything its user owns: what the turn left there
    goes all the same, before another chat's tools run."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-shared-temp-"))
    nonce = uuid.uuid4().hex[:8]
    left = [Path(d) / f"agentbot-left-by-a-tool-{nonce}" for d in SHARED_TEMP_DIRS if os.path.isdir(d)]
    secret = "chat-one-" + "secret"
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY, sweep_scope=scope
        ) as runtime:
            writes = " ; ".join(
                f"echo chat-one-secret > {path} && echo wrote-{i}" for i, path in enumerate(left)
            )
            wrote = runtime.turn(SABOTEUR, 1, f"bash: {writes} ; echo END-OF-WRITES").text
            written = [path for i, path in enumerate(left) if f"wrote-{i}" in wrote.split("END-OF-WRITES")[0]]
            reads = " ; ".join(f"cat {path}" for path in left)
            read = runtime.turn(OTHER, 2, f"bash: {reads} ; echo END-OF-READS")
    finally:
        remove_tree(scratch)
        for path in left:
            remove_tree(path)

    assert bool(written) != landlock, written  # without Landlock the writes outside succeeded
    assert read.ok and "END-OF-READS" in read.text, read
    assert secret not in read.text, read.text


# Run in the saboteur's work directory: what the runtime would remove to make room goes first
# (the session's home and tmp: not with Landlock), then directories with a file each until the
# file system has no inode or block left, then one file grown until no block is left.
FILL_THE_DISK = (
    "python3 -c \"import os, shutil\nfor gone in ('.claude', '../home', '../tmp'):\n"
    "    shutil.rmtree(gone, ignore_errors=True)\nn = 0\ntry:\n    while True:\n        os.mkdir(f'd{n}')\n"
    "        open(f'd{n}/f', 'w').close()\n        n += 1\nexcept OSError:\n    pass\ntry:\n"
    "    with open('d0/big', 'wb') as big:\n        while True:\n            big.write(bytes(65536))\n"
    "            big.flush()\nexcept OSError:\n    pass\nprint('FILLED', n)\""
)


@contextlib.contextmanager
def _small_disk(mount_point: Path) -> Iterator[None]:
    """A 48 MiB ext4 file system (8,192 inodes) mounted at ``mount_point``: the runtime's disk is
    small in Lambda too, and on ext4 a directory grows by whole blocks, so a full disk refuses
    new names (tmpfs refuses only new inodes)."""
    image = mount_point.with_suffix(".img")
    with image.open("wb") as blank:
        blank.truncate(48 * 1024 * 1024)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-N", "8192", str(image)], capture_output=True, check=False
    )
    mount_point.mkdir()
    if (
        made.returncode != 0
        or subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)]).returncode
    ):
        pytest.skip(f"CONTAINMENT NOT TESTED: cannot mount an ext4 image here ({made.stderr.decode()[:200]})")
    try:
        (mount_point / "lost+found").rmdir()
        yield
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        image.unlink()


@pytest.mark.parametrize("scope", ["uid", "descendants"], ids=["as-lambda", "as-agentbot-dev"])
@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_that_fills_the_disk_breaks_no_later_turn(landlock: bool, scope: str) -> None:
    """A tool may fill its own work directory (Landlock lets it: that is where it works) until the
    disk has no block or inode left. The next chat's turn must still run: what the saboteur left
    goes first, however it is shaped, and removing it must itself need no space. The saboteur's
    own turns are answered and kept in its history too, the one that filled the disk included:
    the runtime writes nothing of its own to the full disk that an answer needs."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-full-disk-"))
    try:
        with (
            _small_disk(scratch / "sessions"),
            bash_scripted_runtime(
                user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY, sweep_scope=scope
            ) as runtime,
        ):
            runtime.turn(SABOTEUR, 1, f"bash: {FILL_THE_DISK}")
            full_once = _full(scratch / "sessions")
            other = runtime.turn(OTHER, 2, "hello")
            filling = runtime.turn(SABOTEUR, 3, f"bash: {FILL_THE_DISK}")
            full_again = _full(scratch / "sessions")
            saboteur_again = runtime.turn(SABOTEUR, 4, "hello")
    finally:
        remove_tree(scratch)

    assert full_once and full_again  # the sabotage ran (else this proves nothing)
    assert other.ok and other.text == "answer after 0 earlier turns", other
    assert filling.ok, filling
    assert saboteur_again.ok and saboteur_again.text == "answer after 2 earlier turns", saboteur_again


def _full(mount_point: Path) -> bool:
    """Whether the agent's user can make nothing more there: no block or no inode left."""
    usage = os.statvfs(mount_point)
    return usage.f_bavail * usage.f_frsize < 64 * 1024 or usage.f_favail < 8


# The runtime's smallest disk budget, 16 MiB: 4,096 entries at a block each.
SMALL_DISK_LIMIT = {"SESSION_DISK_LIMIT_MB": "16"}
FLOOD_EMPTY_FILES = (
    "mkdir flood && python3 -c \"import os\nfor i in range(5000):\n    open(f'flood/{i}', 'w').close()\""
    " && echo FLOODED"
)


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_flood_of_empty_files_is_over_the_disk_budget_and_gone_by_the_next_turn(
    landlock: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    """Empty files cost inodes, not bytes: millions of them run a disk out of inodes with no
    byte written, and counted as bytes they fitted any budget, so they stayed for every later
    turn. Each counts a block now: over SESSION_DISK_LIMIT_MB the chat's files go before its
    next turn (the operator is told which setting), and its history is restored all the same."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-inode-flood-"))
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY, settings=SMALL_DISK_LIMIT
        ) as runtime:
            flood = runtime.turn(SABOTEUR, 1, f"bash: {FLOOD_EMPTY_FILES}")
            (saboteurs,) = [p for p in (scratch / "sessions").iterdir() if not p.name.startswith(".")]
            flooded = len(list((saboteurs / "work" / "flood").iterdir()))
            after = runtime.turn(SABOTEUR, 2, "bash: ls flood | wc -l; test -e flood || echo FLOOD-GONE")
            again = runtime.turn(SABOTEUR, 3, "hello")
    finally:
        remove_tree(scratch)

    # the sabotage ran past the budget (the turn's own watch may have stopped it there)
    assert flooded > 4096 and ("FLOODED" in flood.text or flood.error_reason == "disk_limit"), flood
    assert after.ok and "FLOOD-GONE" in after.text, after
    # a flood stopped before it wrote a word is no turn of the history (a failure, unrecorded)
    earlier = 2 if flood.ok else 1
    assert again.ok and again.text == f"answer after {earlier} earlier turns", again
    told = [line for line in capfd.readouterr().err.splitlines() if "workspace.over_disk_limit" in line]
    assert told and "SESSION_DISK_LIMIT_MB" in told[0], told


@pytest.mark.parametrize("scope", ["uid", "descendants"], ids=["as-lambda", "as-agentbot-dev"])
@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_writing_past_the_disk_budget_is_stopped_during_its_turn(
    landlock: bool, scope: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lambda's /tmp is bounded by its ephemeral storage, a developer's disk under `agentbot
    dev` by nothing: a tool could fill it in one turn. The turn stops once the chat's files pass
    SESSION_DISK_LIMIT_MB, the user is told why (reason disk_limit, not a retry), the operator
    which setting, and the chat goes on: its next turn starts without those files and
    remembers what came before."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-disk-budget-"))
    try:
        with bash_scripted_runtime(
            user,
            landlock=landlock,
            scratch=scratch,
            model_key=SABOTAGE_MODEL_KEY,
            sweep_scope=scope,
            settings=SMALL_DISK_LIMIT,
        ) as runtime:
            first = runtime.turn(SABOTEUR, 1, "hello")
            writing = runtime.turn(SABOTEUR, 2, f"bash: {WRITE_200_MIB}")
            (saboteurs,) = [p for p in (scratch / "sessions").iterdir() if not p.name.startswith(".")]
            written_mib = sum(f.stat().st_size for f in (saboteurs / "work").glob("f*")) / 2**20
            after = runtime.turn(SABOTEUR, 3, "hello again")
            left = list((saboteurs / "work").glob("f*"))
    finally:
        remove_tree(scratch)

    assert first.ok, first
    assert writing.error_reason == "disk_limit" and not writing.retryable, writing
    # stopped once the session's files (the tool's, the transcript, ...) passed 16 MiB
    assert 8 < written_mib < 64, written_mib
    assert after.ok and after.text == "answer after 1 earlier turns" and left == [], (after, left)
    told = [line for line in capfd.readouterr().err.splitlines() if "turn.over_disk_limit" in line]
    assert len(told) == 1 and "SESSION_DISK_LIMIT_MB" in told[0], told


def _give(path: Path, user: str) -> None:
    record = pwd.getpwnam(user)
    os.chown(path, record.pw_uid, record.pw_gid)


@pytest.mark.parametrize("replacement", ["file", "link"])
@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_that_puts_something_else_in_place_of_the_sessions_root_breaks_no_later_turn(
    landlock: bool, replacement: str
) -> None:
    """In Lambda the sessions root is the function's own entry in /tmp: a tool without Landlock
    may move it away and leave a file, or a link to a directory the runtime may not write, at its
    path. The next chat's turn must run all the same, and the one after it."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-swapped-root-"))
    not_yours = scratch / "not-yours"
    put = '(set -C; echo x > "$R")' if replacement == "file" else f'ln -sT {not_yours} "$R"'
    # The CLI writes under the sessions root while the tool runs (its output files), and may
    # make the directory again between the move and the put: the saboteur tries until it holds.
    swap = (
        'R="$(cd ../.. && pwd)"; for i in $(seq 50); do '
        '[ -d "$R" ] && [ ! -L "$R" ] && mv -T "$R" "$R.moved-$i"; '
        f'{put} 2>/dev/null; if [ -L "$R" ] || [ -f "$R" ]; then echo SWAPPED; break; fi; sleep 0.05; done'
    )
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY
        ) as runtime:
            # Only now (no other runtime of the user's runs): as in Lambda, where /tmp is the
            # function's, the sessions root's parent is the user's.
            _give(scratch, user)
            not_yours.mkdir(mode=0o755)
            runtime.turn(SABOTEUR, 1, f"bash: {swap}")
            swapped = (scratch / "sessions").is_symlink() or (scratch / "sessions").is_file()
            after = runtime.turn(OTHER, 2, "hello")
            again = runtime.turn(THIRD, 3, "hello")
    finally:
        remove_tree(scratch)

    assert swapped != landlock  # without Landlock the swap succeeded (else this proves nothing)
    assert after.ok and after.text == "answer after 0 earlier turns", after
    assert again.ok and again.text == "answer after 0 earlier turns", again


def _kill_the_runtime(user: str) -> None:
    """SIGKILL the runtime process, as Lambda's reset after a crash or a timeout ends it (a
    tool's ``kill`` of a runtime thread's tid does it too without Landlock ABI 6), and wait
    until it is gone: the local Lambda starts a new one for the next invoke, on the same file
    system."""
    uid = pwd.getpwnam(user).pw_uid

    def runtimes() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                mine = entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
                if mine and b"awslambdaric" in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
        return found

    for pid in runtimes():
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while runtimes() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_what_a_tool_left_in_the_runtimes_home_is_gone_before_a_new_runtime_builds(landlock: bool) -> None:
    """The image sets the runtime's HOME to /tmp, where a tool without Landlock may write, and
    boto3 reads its configuration and service models from ``~/.aws`` when the runtime builds
    its clients: a runtime started anew in the same environment (after a crash or a timeout)
    must not build from what an earlier turn's tool left there. Here an unreadable SSM model
    would fail every build: every later chat's turn; an endpoint or a doctored model would
    send other chats' transcripts elsewhere."""
    user = runtime_user(landlock)
    scratch = Path(tempfile.mkdtemp(prefix="agentbot-home-"))
    home = scratch / "home"
    model = home / ".aws" / "models" / "ssm" / "2099-01-01" / "service-2.json"
    plant = f"mkdir -p {model.parent} && echo not-a-model > {model} && echo PLANTED"
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key=SABOTAGE_MODEL_KEY, home=home
        ) as runtime:
            # Only now (no other runtime of the user's runs): as in Lambda, where /tmp is the
            # function's, HOME and the sessions root's parent are the user's.
            _give(scratch, user)
            home.mkdir()
            _give(home, user)
            runtime.turn(SABOTEUR, 1, f"bash: {plant}")
            planted = model.exists()
            _kill_the_runtime(user)
            after = runtime.turn(OTHER, 2, "hello")
            again = runtime.turn(THIRD, 3, "hello")
    finally:
        remove_tree(scratch)

    assert planted != landlock  # without Landlock the plant succeeded (else this proves nothing)
    assert after.ok and after.text == "answer after 0 earlier turns", after
    assert again.ok and again.text == "answer after 0 earlier turns", again
