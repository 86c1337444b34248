"""Named background processes that outlive whoever started them.

Each runs in its own session (so a signal to its group reaches its children), with a
given working directory, its output appended to a log file. A pid file records the
pid and the executable; a later Python process finds the process again and checks
through /proc that the pid still belongs to it, not to a reused number.

A child does not inherit our environment: the portal's holds DJANGO_SECRET_KEY,
FIELD_ENCRYPTION_KEYS and DATABASE_URL, which no Kubernetes component or syncer needs.
It gets the few variables any program expects (child_environment) plus what the
caller passes explicitly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

# Passed on to every child: where programs are, the user's home, locale and time zone,
# and the temporary directory when one is set.
INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: the INHERITED and LC_* variables we have, then `extra`."""
    base = {
        name: value for name, value in os.environ.items()
        if name in INHERITED or name.startswith("LC_")
    }
    return {**base, **(extra or {})}


class ProcessDir:
    def __init__(self, cwd: Path, run_dir: Path, log_dir: Path):
        self.cwd = cwd
        self.run_dir = run_dir
        self.log_dir = log_dir
        self._children: dict[str, subprocess.Popen] = {}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start `name` unless it already runs from this directory: the pid of what runs.
        Two workers that both found it stopped (one whose lock expired while it waited on
        a slow machine, say) start it once between them."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._starting(name):
            running = self.pid(name)
            if running is not None:
                logger.info("%s already runs (pid %s) in %s", name, running, self.cwd)
                return running
            proc = self._start(name, argv, env)
        logger.info("started %s (pid %s) in %s", name, proc.pid, self.cwd)
        return proc.pid

    @contextmanager
    def _starting(self, name: str):
        with open(self.run_dir / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None) -> subprocess.Popen:
        with open(self.log_path(name), "ab") as log:
            log.write(f"\n--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_environment(env),
            )
        self._children[name] = proc
        self._pid_path(name).write_text(f"{proc.pid}\n{os.path.realpath(argv[0])}\n")
        return proc

    def pid(self, name: str) -> int | None:
        """The pid of `name` if it still runs from this directory."""
        try:
            pid_text, exe = self._pid_path(name).read_text().split("\n")[:2]
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if process_alive(pid) and _identity(pid) == (exe, str(self.cwd)):
            return pid
        return None

    def argv(self, name: str) -> list[str] | None:
        """The command line `name` runs with, if it runs."""
        pid = self.pid(name)
        if pid is None:
            return None
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [arg.decode() for arg in raw.rstrip(b"\0").split(b"\0")]

    def exited(self, name: str) -> bool:
        """True if `name` is not running; reaps it if it was our child."""
        proc = self._children.get(name)
        if proc is not None and proc.poll() is not None:
            del self._children[name]
        return self.pid(name) is None

    def stop(self, name: str, timeout: float = 20) -> None:
        """SIGTERM the process group, SIGKILL it if still there after `timeout`."""
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(name, pid, timeout):
                logger.warning("%s (pid %s) ignored SIGTERM; killing it", name, pid)
                _signal_group(pid, signal.SIGKILL)
                self._wait_exit(name, pid, timeout)
        self._pid_path(name).unlink(missing_ok=True)

    def kill(self, name: str, timeout: float = 20) -> None:
        """SIGKILL the process group: for a process whose state is thrown away with it."""
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            self._wait_exit(name, pid, timeout)
        self._pid_path(name).unlink(missing_ok=True)

    def _wait_exit(self, name: str, pid: int, timeout: float) -> bool:
        # Wait on the pid itself: while a process exits, /proc stops showing its exe
        # before the process is gone, so pid(name) turns None too early.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.exited(name)  # reaps it if it is our child
            if not process_alive(pid):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, name: str, lines: int = 25) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie does not: an orphaned process waits for init
    to reap it, and on some machines init is slow to do so."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _identity(pid: int) -> tuple[str, str] | None:
    try:
        return os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
