"""Database work for async code: a small pool of threads, each with its own Django
connection, so a query never blocks the event loop. Connections persist between
requests (the gateway has no request cycle to close them); a broken one is replaced
once, and stop() closes them all, so nothing holds the database after shutdown."""

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import InterfaceError, OperationalError, connections

WORKERS = 8


class DatabaseThreads:
    def __init__(self, workers: int = WORKERS):
        self.workers = workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="gateway-db")

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(_reconnecting, fn, *args))

    def stop(self) -> None:
        """Close every thread's connections, then the threads. The barrier holds each
        task on its own thread until all have closed theirs."""
        barrier = threading.Barrier(self.workers)

        def close():
            connections.close_all()
            barrier.wait(timeout=10)

        for future in [self._executor.submit(close) for _ in range(self.workers)]:
            future.result()
        self._executor.shutdown(wait=True)


def _reconnecting(fn, *args):
    try:
        return fn(*args)
    except (InterfaceError, OperationalError):
        # A connection the database closed (restart, idle timeout): retry once on a new one.
        connections.close_all()
        return fn(*args)
