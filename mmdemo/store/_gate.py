"""A lock file that queues one machine's SQLite writers, so the next one starts as soon as the last commits.

SQLite's own busy handler retries by sleeping (1 ms growing to 100 ms), so under many concurrent
writers the database sits idle while they sleep. Writers that first take this lock wait in line
instead and wake at once. SQLite's locking still guards the data (and other programs); this only
makes waiting fair and fast. No-op where fcntl is missing (Windows).
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class WriteGate:
    def __init__(self, path: Path, timeout_s: float):
        self.path = path
        self.timeout_s = timeout_s
        self._threads = threading.Lock()      # flock is per open file: threads queue here first
        self._fd: int | None = None
        self._pid = -1

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for a write transaction; TimeoutError after timeout_s."""
        if fcntl is None:
            yield
            return
        deadline = time.monotonic() + self.timeout_s
        if not self._threads.acquire(timeout=self.timeout_s):
            raise TimeoutError("write lock")
        try:
            fd = self._file()
            delay = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError("write lock") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.002)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():   # a forked child opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
