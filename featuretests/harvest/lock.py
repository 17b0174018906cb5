"""An exclusive advisory file lock (`fcntl.flock`) so that two processes never build the same store at once.

The lock file sits next to the store directory and is never deleted (deleting it would let a third process lock a
fresh inode while the second still waits on the old one). The kernel drops the lock when its holder dies, kill -9
included, so a crashed harvest never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None = None, poll: float = 0.05) -> Iterator[float]:
    """Hold an exclusive lock on `path` (created if absent); yields the seconds spent waiting.

    `timeout` None waits for ever; otherwise TimeoutError after `timeout` seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - start > timeout:
                        raise TimeoutError(f"could not lock {path} within {timeout} s") from None
                    time.sleep(poll)
        yield time.monotonic() - start
    finally:
        os.close(fd)  # closing the descriptor releases the lock
