"""Durable, ordered, exactly-once delivery of results batches.

Every batch is first written to the spool directory as `<seq>.json` (12-digit, monotonically
increasing sequence; temp file + fsync + rename + directory fsync, so a crash leaves either
the whole file or none). `deliver()` posts pending files oldest first and deletes a file only
after a 2xx, which includes the server's `"duplicate": true` answer to a re-post of the same
idempotency key: so a batch is stored once even if we crash between the 2xx and the delete.

If the server is unreachable (connection error or 5xx) delivery stops and keeps the file, so
later batches never overtake earlier ones. A 409/422 (or 400) means the server will never accept
that body: the file moves to `rejected/` with an `.error.json` beside it and delivery goes on.
Any other 4xx (auth, not found) stops delivery and keeps the file for a later attempt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .client import ClientError, Conflict, Rejected, ServerUnavailable
from .files import TEMP_PREFIX, atomic_write, fsync_dir

_NAME = re.compile(r"^(\d{12})\.json$")


class ResultsPoster(Protocol):
    def post_results(self, payload: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # idempotency keys stored now
    duplicates: list[str] = field(default_factory=list)  # keys the server already had
    rejected: list[str] = field(default_factory=list)  # keys moved to rejected/
    remaining: int = 0  # files still pending
    error: str | None = None  # why delivery stopped early

    @property
    def complete(self) -> bool:
        return self.remaining == 0


class Spool:
    """A directory of results batches waiting for the server."""

    def __init__(self, directory: str | Path, log: Callable[[str], None] | None = None) -> None:
        self.dir = Path(directory)
        self.rejected_dir = self.dir / "rejected"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rejected_dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._log = log or (lambda _msg: None)
        for stale in self.dir.glob(f"{TEMP_PREFIX}*"):  # a crash mid-write leaves at most a temp file
            stale.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers and deliverers across threads and processes."""
        with self._lock, open(self.dir / ".lock", "a+") as lockfile:
            fcntl.flock(lockfile.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lockfile.fileno(), fcntl.LOCK_UN)

    def _next_seq(self) -> int:
        counter = self.dir / ".seq"
        try:
            last = int(counter.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        existing = [
            int(m.group(1))
            for p in (*self.dir.iterdir(), *self.rejected_dir.iterdir())
            if (m := _NAME.match(p.name))
        ]
        seq = max([last, *existing]) + 1
        atomic_write(counter, f"{seq}\n".encode())
        return seq

    def enqueue(self, payload: dict[str, Any]) -> Path:
        """Persist one batch (it must carry an `idempotency_key`); returns its file."""
        if not payload.get("idempotency_key"):
            raise ValueError("a spooled batch needs an idempotency_key")
        data = json.dumps(payload, sort_keys=True, allow_nan=False).encode()
        with self._locked():
            path = self.dir / f"{self._next_seq():012d}.json"
            atomic_write(path, data)
        return path

    def pending(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if _NAME.match(p.name))

    def rejected(self) -> list[Path]:
        return sorted(p for p in self.rejected_dir.iterdir() if _NAME.match(p.name))

    def _reject(self, path: Path, key: str, exc: ClientError) -> None:
        error = {"status": exc.status, "error": exc.error, "detail": exc.detail, "idempotency_key": key}
        atomic_write(
            self.rejected_dir / (path.stem + ".error.json"), json.dumps(error, indent=2, default=str).encode()
        )
        os.replace(path, self.rejected_dir / path.name)
        fsync_dir(self.dir)
        self._log(
            f"spool: batch {key} rejected by the server ({exc.status} {exc.error}); kept in {path.name}"
        )

    def deliver(self, client: ResultsPoster) -> DeliveryReport:
        """Post pending batches in order until done or the server stops accepting them."""
        report = DeliveryReport()
        with self._locked():
            files = self.pending()
            for i, path in enumerate(files):
                try:
                    payload = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:  # unreadable: never going to deliver it
                    self._reject(path, path.stem, ClientError(0, "unreadable_spool_file", str(exc)))
                    report.rejected.append(path.stem)
                    continue
                key = str(payload.get("idempotency_key", path.stem))
                try:
                    answer = client.post_results(payload)
                except ServerUnavailable as exc:
                    report.error = str(exc)
                    report.remaining = len(files) - i
                    return report
                except (Conflict, Rejected) as exc:
                    self._reject(path, key, exc)
                    report.rejected.append(key)
                    continue
                except ClientError as exc:
                    report.error = str(exc)
                    report.remaining = len(files) - i
                    self._log(f"spool: delivery paused: {exc}")
                    return report
                (report.duplicates if answer.get("duplicate") else report.delivered).append(key)
                path.unlink()
                fsync_dir(self.dir)
        return report

    def submit(self, client: ResultsPoster, payload: dict[str, Any]) -> DeliveryReport:
        """Spool one batch, then deliver everything pending (older batches first)."""
        self.enqueue(payload)
        return self.deliver(client)
