"""Following a vcluster until its phase settles, showing its steps as the portal does.

On a terminal: a live table of every step with its state and duration, redrawn at
each poll. Elsewhere (CI logs, pipes): one line per step once it has finished, so a log
reads top to bottom.
"""

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

POLL_SECONDS = 1.0
SYMBOLS = {"Pending": ("·", "dim"), "Running": ("…", "yellow"), "Succeeded": ("✓", "green"),
           "Failed": ("✗", "red"), "Skipped": ("-", "dim")}
FINISHED = {"Succeeded", "Failed", "Skipped"}


def step_line(step: dict) -> Text:
    symbol, style = SYMBOLS.get(step["status"], ("?", ""))
    line = Text.assemble((f"{symbol} ", style), step["name"])
    if step.get("duration") is not None:
        line.append(f"  {step['duration']:.2f}s", style="dim")
    if step["status"] == "Failed" and step.get("message"):
        line.append(f"  {step['message']}", style="red")
    return line


def render(vcluster: dict, steps: list[dict], elapsed: float) -> Group:
    table = Table.grid(padding=(0, 1))
    for step in steps:
        table.add_row(step_line(step))
    header = Text.assemble((vcluster["name"], "bold"), f" ({vcluster['team']}): {vcluster['phase']}",
                           (f"  {elapsed:.1f}s", "dim"))
    return Group(header, table)


def follow(fetch: Callable[[], dict], first: dict, console: Console, started: float) -> dict:
    """Poll fetch() until the vcluster's work is done (no longer in_progress); return the last answer. Steps
    already finished in `first` (provisioning's, when following a teardown) are not shown."""
    done_before = {step["name"] for step in first["steps"] if step["status"] in FINISHED}

    def new_steps(vcluster: dict) -> list[dict]:
        return [step for step in vcluster["steps"] if step["name"] not in done_before]

    if console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            return _poll(fetch, lambda v: live.update(render(v, new_steps(v), time.monotonic() - started),
                                                               refresh=True))
    printed: set[str] = set()

    def print_finished(vcluster: dict) -> None:
        for step in new_steps(vcluster):
            if step["status"] in FINISHED and step["name"] not in printed:
                printed.add(step["name"])
                console.print(step_line(step))

    return _poll(fetch, print_finished)


def _poll(fetch, show) -> dict:
    while True:
        vcluster = fetch()
        show(vcluster)
        if not vcluster["in_progress"]:
            return vcluster
        time.sleep(POLL_SECONDS)
