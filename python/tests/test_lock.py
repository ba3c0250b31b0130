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


def test_a_thread_that_locks_while_another_releases_still_holds_the_lock(tmp_path, monkeypatch):
    """Thread A's release unlocks and closes its descriptor; thread B asks for the lock in
    between. B must not get in on the process's lock that A's close then drops: B waits, locks
    anew, and holds it against other processes."""
    import fcntl
    import types

    path = tmp_path / "os-brick-connect_volume"
    unlocking, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def lockf(f, op):
        if op == fcntl.LOCK_UN:
            unlocking.set()
            b_in.wait(1)  # give B the window (with the fix, B waits for this release)
        fcntl.lockf(f, op)

    monkeypatch.setattr(_lock, "fcntl", types.SimpleNamespace(
        LOCK_EX=fcntl.LOCK_EX, LOCK_UN=fcntl.LOCK_UN, lockf=lockf))
    held_against_others = []

    def a() -> None:
        with _lock.osbrick_lock(str(tmp_path), "connect_volume"):
            pass
        a_out.set()

    def b() -> None:
        unlocking.wait(10)
        with _lock.osbrick_lock(str(tmp_path), "connect_volume"):
            b_in.set()
            a_out.wait(10)  # A's release is over: its close happened
            held_against_others.append(not other_process_gets(path))

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert held_against_others == [True], "B believed it held the lock; another process got it"
    assert other_process_gets(path)
