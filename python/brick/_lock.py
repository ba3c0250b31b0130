"""os-brick's external lock, taken by brick so that brick and os-brick on one host exclude each
other as two os-brick processes do.

os-brick decorates ``connect_volume`` and ``disconnect_volume`` of its iSCSI connector with
``synchronized('connect_volume', external=True)`` (and ``extend_volume`` with
``'extend_volume'``), prefix ``os-brick-``: oslo.concurrency turns that into the file
``<lock_path>/os-brick-connect_volume`` and locks it with fasteners' InterProcessLock, which is
``fcntl.lockf(f, LOCK_EX | LOCK_NB)`` polled: a POSIX record lock on the whole file, on a file
opened for append. brick takes the same kind of lock on the same file (blocking, which releases
the GIL while it waits).

A POSIX lock belongs to the process, not to a thread or a file object: closing any descriptor of
the file drops it, and a second lockf by the same process succeeds at once. So the threads of one
process share one hold: the first thread locks the file, later ones join it while it is held, the
last one to leave unlocks it. brick's threads still overlap (brick's own per-target locks order
them); other processes, os-brick's included, wait for all of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from typing import IO, Dict, Iterator, Optional

PREFIX = "os-brick-"


def lock_file(lock_path: str, name: str) -> str:
    """The file oslo.concurrency locks for os-brick's lock ``name`` in ``lock_path``."""
    return os.path.join(lock_path, PREFIX + name.replace(os.sep, "_"))


class _ProcessLock:
    """The process's hold on one lock file, shared by its threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._holders = 0
        self._locking = False
        self._file: Optional[IO[str]] = None

    def acquire(self) -> None:
        with self._cond:
            while self._locking:
                self._cond.wait()
            if self._holders:
                self._holders += 1
                return
            self._locking = True
        try:
            f = open(self.path, "a")
            try:
                fcntl.lockf(f, fcntl.LOCK_EX)
            except BaseException:
                f.close()
                raise
        except BaseException:
            with self._cond:
                self._locking = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._file = f
            self._holders = 1
            self._locking = False
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._holders -= 1
            if self._holders:
                return
            f, self._file = self._file, None
            # Until the unlock and close below are done, no thread may lock anew: its lockf
            # would succeed at once (the process still holds the lock), and this close would
            # then drop the process's lock under it, while it believes it holds it.
            self._locking = True
        try:
            if f is not None:
                try:
                    fcntl.lockf(f, fcntl.LOCK_UN)
                finally:
                    f.close()
        finally:
            with self._cond:
                self._locking = False
                self._cond.notify_all()

    @property
    def held(self) -> bool:
        return self._holders > 0


_locks: Dict[str, _ProcessLock] = {}
_locks_guard = threading.Lock()


def _lock_of(path: str) -> _ProcessLock:
    path = os.path.abspath(path)
    with _locks_guard:
        lock = _locks.get(path)
        if lock is None:
            lock = _locks[path] = _ProcessLock(path)
        return lock


@contextlib.contextmanager
def osbrick_lock(lock_path: Optional[str], name: str) -> Iterator[None]:
    """Holds os-brick's external lock ``name`` in ``lock_path`` for the block; nothing when no
    lock path is configured."""
    if not lock_path:
        yield
        return
    try:
        os.makedirs(lock_path, exist_ok=True)
    except OSError:
        pass  # the open below says what is wrong, naming the file
    lock = _lock_of(lock_file(lock_path, name))
    try:
        lock.acquire()
    except OSError as e:
        from brick import exception

        raise exception.BrickException(
            "cannot take os-brick's lock %s: %s (check lock_path / BRICK_OSBRICK_LOCK_PATH)"
            % (lock.path, e.strerror or e)) from e
    try:
        yield
    finally:
        lock.release()
