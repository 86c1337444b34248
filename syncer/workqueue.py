"""A queue of keys to reconcile, with the guarantees controllers rely on.

A key waiting in the queue is held once, however often it is added; a key being worked
on is never handed to a second worker, and if it was added meanwhile it comes back once
the first worker is done. Keys can be added after a delay, and failing keys come back
with an exponential backoff. The queue also remembers when the change behind a key was
first seen (`add`), until a worker has reconciled it: the syncer's lag.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque


class WorkQueue:
    def __init__(self, *, retry_first: float = 0.1, retry_limit: float = 30):
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}  # key → when its delayed addition is due
        self._failures: dict[str, int] = {}
        self._seen: dict[str, float] = {}  # key → when a change not yet taken was added
        self._taken_seen: dict[str, float] = {}  # the same for keys being worked on
        self._retry_first = retry_first
        self._retry_limit = retry_limit
        self._shut_down = False

    def add(self, key: str) -> None:
        """A change to `key` was seen: reconcile it as soon as a worker is free."""
        with self._cond:
            self._seen.setdefault(key, time.monotonic())
            self._add(key)

    def add_after(self, key: str, seconds: float) -> None:
        if seconds <= 0:
            return self.add(key)
        due = time.monotonic() + seconds
        with self._cond:
            if self._due.get(key, due + 1) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, key))
            self._cond.notify()

    def retry(self, key: str) -> float:
        """Add `key` again after a delay that doubles with each failure; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        with self._cond:  # the change is still to be brought over
            if key in self._taken_seen:
                self._seen.setdefault(key, self._taken_seen[key])
        delay = min(self._retry_first * 2**failures, self._retry_limit)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def seen_at(self, key: str) -> float | None:
        """When the change a worker is reconciling under `key` was first seen (monotonic
        clock), or None if it was taken for a delayed or periodic look."""
        with self._cond:
            return self._taken_seen.get(key)

    def get(self) -> str | None:
        """The next key, or None once the queue is shut down."""
        with self._cond:
            while True:
                if self._shut_down:
                    return None
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    if key in self._seen:
                        self._taken_seen[key] = self._seen.pop(key)
                    return key
                timeout = self._delayed[0][0] - time.monotonic() if self._delayed else None
                self._cond.wait(timeout)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            self._taken_seen.pop(key, None)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        with self._cond:
            self._shut_down = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def _add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:  # else superseded by an earlier one
                del self._due[key]
                self._add(key)
