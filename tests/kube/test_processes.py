"""Named background processes: started once, whoever asks."""

from __future__ import annotations

import sys
import threading

from localkube.processes import ProcessDir, process_alive


def process_dir(tmp_path) -> ProcessDir:
    return ProcessDir(tmp_path, tmp_path / "run", tmp_path / "logs")


def test_two_workers_that_both_found_it_stopped_start_it_once(tmp_path):
    """As two Celery workers would, each with its own ProcessDir, at the same moment."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    dirs = [process_dir(tmp_path) for _ in range(4)]
    pids: list[int] = []
    threads = [threading.Thread(target=lambda d=d: pids.append(d.spawn("sleeper", argv))) for d in dirs]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(pids)) == 1 and process_alive(pids[0])
        assert process_dir(tmp_path).pid("sleeper") == pids[0]
    finally:
        process_dir(tmp_path).stop("sleeper", timeout=5)
    assert not process_alive(pids[0])


def test_a_stopped_process_is_started_again_with_a_new_pid(tmp_path):
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    processes = process_dir(tmp_path)
    first = processes.spawn("sleeper", argv)
    processes.stop("sleeper", timeout=5)
    second = processes.spawn("sleeper", argv)
    try:
        assert second != first and processes.pid("sleeper") == second
    finally:
        processes.stop("sleeper", timeout=5)
