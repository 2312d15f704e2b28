"""Keep `agentbot dev`'s sessions across restarts when it runs on the embedded moto server.

moto holds everything in memory, so the state directory keeps a copy of what sessions
need: every item of the sessions table (DynamoDB JSON, one per line) and every object of
the sessions bucket (files under `s3/`). It is written after each reply and at exit
(to a temporary name, then renamed, so a crash never leaves half a copy) and loaded into
the fresh server at start. Queue contents are not kept: `agentbot dev` drains the queue
before it exits.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

_TABLE_FILE = "table.jsonl"
_OBJECTS_DIR = "s3"


class StateDirectory:
    """Saves and restores one table and one bucket to and from a directory."""

    def __init__(self, root: Path, *, dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
        self.root = root
        self._dynamodb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._lock = threading.Lock()
        # ETags of the objects in the last saved copy: a save after each reply downloads
        # only what changed (snapshots are rewritten rarely, and they are the big part)
        self._saved_etags: dict[str, str] = {}

    def _keep_private(self) -> None:
        """Only this user may enter the directory: it holds every chat's sessions, and the
        agent, running as another user, may reach where it is (a --state-dir under /tmp)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.root.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            raise PermissionError(f"{self.root} is a link or another user's directory, not this run's own")
        self.root.chmod(0o700)  # one an earlier version left open

    def restore(self) -> tuple[int, int]:
        """Load a saved copy into the (empty) table and bucket; returns (items, objects)."""
        self._keep_private()
        items = objects = 0
        table_file = self.root / _TABLE_FILE
        if table_file.exists():
            batch: list[dict[str, Any]] = []
            for line in table_file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    batch.append({"PutRequest": {"Item": _binary_in(json.loads(line))}})
                    items += 1
                if len(batch) == 25:
                    self._write_batch(batch)
                    batch = []
            if batch:
                self._write_batch(batch)
        objects_dir = self.root / _OBJECTS_DIR
        if objects_dir.is_dir():
            for path in sorted(objects_dir.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    key = path.relative_to(objects_dir).as_posix()
                    self._s3.put_object(Bucket=self._bucket, Key=key, Body=path.read_bytes())
                    objects += 1
        return items, objects

    def save(self) -> None:
        """Write the current table and bucket to the directory, replacing the last copy."""
        with self._lock:
            self._keep_private()
            staging = self.root / ".saving"
            shutil.rmtree(staging, ignore_errors=True)
            (staging / _OBJECTS_DIR).mkdir(parents=True)
            with open(staging / _TABLE_FILE, "w", encoding="utf-8") as out:
                for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._table):
                    for item in page["Items"]:
                        out.write(json.dumps(_binary_out(item)) + "\n")
            etags: dict[str, str] = {}
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket):
                for entry in page.get("Contents", []):
                    target = (staging / _OBJECTS_DIR / entry["Key"]).resolve()
                    if not target.is_relative_to((staging / _OBJECTS_DIR).resolve()):
                        raise ValueError(f"object key {entry['Key']!r} would leave the state directory")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    kept = self.root / _OBJECTS_DIR / entry["Key"]
                    if self._saved_etags.get(entry["Key"]) == entry["ETag"] and kept.is_file():
                        os.link(kept, target)  # unchanged since the last save: no download
                    else:
                        body = self._s3.get_object(Bucket=self._bucket, Key=entry["Key"])["Body"].read()
                        target.write_bytes(body)
                    etags[entry["Key"]] = entry["ETag"]
            # swap in the new copy; the old one is removed only after the new one is complete
            previous = self.root / ".previous"
            shutil.rmtree(previous, ignore_errors=True)
            previous.mkdir()
            for name in (_TABLE_FILE, _OBJECTS_DIR):
                if (self.root / name).exists():
                    os.replace(self.root / name, previous / name)
                os.replace(staging / name, self.root / name)
            shutil.rmtree(previous, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            self._saved_etags = etags

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: batch}
        while pending:
            pending = self._dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


# DynamoDB JSON carries binary values ("B", "BS") as bytes; on disk they are base64 text.
def _binary_out(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__base64__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _binary_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary_out(v) for v in value]
    return value


def _binary_in(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__base64__"}:
            return base64.b64decode(value["__base64__"])
        return {k: _binary_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary_in(v) for v in value]
    return value
