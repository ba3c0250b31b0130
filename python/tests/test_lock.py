"""os-brick's external lock: the file oslo.concurrency names, an fcntl (lockf) lock that another
process (os-brick, through fasteners) cannot take while brick holds it."""

import subprocess
import sys
import threading

from brick import _lock

# What fasteners' InterProcessLock does in another process: lockf(LOCK_EX | LOCK_NB) on the
# file opened for append. Exit 0 if it got the lock, 1 if it is held.
TRY = """
import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(1)
"""


def other_process_gets(path) -> bool:
    return subprocess.run([sys.executable, "-c", TRY, str(path)]).returncode == 0


def test_file_is_named_as_oslo_concurrency_names_os_bricks_lock(tmp_path):
    assert _lock.lock_file(str(tmp_path), "connect_volume") == str(
        tmp_path / "os-brick-connect_volume")


def test_other_process_waits_while_held_and_gets_it_after(tmp_path):
    path = tmp_path / "os-brick-connect_volume"
    with _lock.osbrick_lock(str(tmp_path), "connect_volume"):
        assert path.exists()
        assert not other_process_gets(path)
    assert other_process_gets(path)


def test_threads_share_the_hold_and_the_last_releases_it(tmp_path):
    path = tmp_path / "os-brick-connect_volume"
    inside = threading.Barrier(2, timeout=10)
    first_out = threading.Event()
    seen = []

    def worker(first: bool) -> None:
        with _lock.osbrick_lock(str(tmp_path), "connect_volume"):
            inside.wait()  # both threads hold it at once: brick's calls overlap
            if first:
                return
            first_out.wait(10)
            seen.append(other_process_gets(path))  # the other thread left: still held

    a = threading.Thread(target=worker, args=(True,))
    b = threading.Thread(target=worker, args=(False,))
    a.start()
    b.start()
    a.join()
    first_out.set()
    b.join()
    assert seen == [False]
    assert other_process_gets(path)


def test_no_lock_path_takes_no_lock(tmp_path):
    with _lock.osbrick_lock(None, "connect_volume"):
        pass
    assert list(tmp_path.iterdir()) == []
