"""The progress display of `create --wait`, fed a sequence of API answers."""

import io

import pytest
from rich.console import Console

from vcp import progress


# What the API says of each phase here: whether work is under way (vclusters.lifecycle).
IN_PROGRESS = {"Pending", "Provisioning", "Deleting"}


def snapshot(phase: str, *statuses: str) -> dict:
    names = ["Host namespace", "Quota and limit range", "Control plane"]
    steps = [{"name": name, "status": status, "duration": 0.5 if status == "Succeeded" else None, "message": ""}
             for name, status in zip(names, statuses)]
    return {"id": 1, "name": "demo", "team": "alpha", "phase": phase, "in_progress": phase in IN_PROGRESS,
            "steps": steps}


ANSWERS = [
    snapshot("Provisioning", "Succeeded", "Running"),
    snapshot("Provisioning", "Succeeded", "Succeeded", "Running"),
    snapshot("Ready", "Succeeded", "Succeeded", "Succeeded"),
]


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(progress, "POLL_SECONDS", 0)


def follow(answers: list[dict], first: dict, terminal: bool) -> tuple[dict, str]:
    console = Console(file=io.StringIO(), force_terminal=terminal, color_system=None, width=100)
    replies = iter(answers)
    last = progress.follow(lambda: next(replies), first, console, started=0.0)
    return last, console.file.getvalue()


def test_it_prints_each_finished_step_once_when_not_on_a_terminal():
    last, text = follow(ANSWERS, snapshot("Pending"), terminal=False)
    assert last["phase"] == "Ready"
    assert text.splitlines() == ["✓ Host namespace  0.50s", "✓ Quota and limit range  0.50s", "✓ Control plane  0.50s"]


def test_it_redraws_every_step_with_the_phase_on_a_terminal():
    last, text = follow(ANSWERS, snapshot("Pending"), terminal=True)
    assert last["phase"] == "Ready"
    assert "demo (alpha): Ready" in text and "… Control plane" in text and "✓ Control plane" in text


def test_it_leaves_out_steps_finished_before_it_started_following():
    before = snapshot("Deleting", "Succeeded", "Succeeded")
    _, text = follow([snapshot("Deleted", "Succeeded", "Succeeded", "Succeeded")], before, terminal=False)
    assert text.splitlines() == ["✓ Control plane  0.50s"]


def test_it_shows_why_a_step_failed():
    failed = snapshot("Failed", "Succeeded", "Failed")
    failed["steps"][1]["message"] = "exceeded quota"
    _, text = follow([failed], snapshot("Pending"), terminal=False)
    assert text.splitlines()[-1] == "✗ Quota and limit range  exceeded quota"


def test_it_stops_when_the_work_stops_whatever_the_phase():
    """A teardown that gives up (DeleteFailed) ends the wait, as Deleted does."""
    answers = [snapshot("Deleting", "Succeeded", "Running"), snapshot("DeleteFailed", "Succeeded", "Running")]
    last, _ = follow(answers, snapshot("Deleting"), terminal=False)
    assert last["phase"] == "DeleteFailed"
