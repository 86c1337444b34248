"""The gateway's background tasks (the attribution writer, the access-change listener)."""

import asyncio


async def cancel_and_wait(task: asyncio.Task) -> None:
    """Cancel `task` and return once it has ended."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
