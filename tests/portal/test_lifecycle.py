"""The lifecycle's tables are whole, every transition has a writer, nothing else writes
a phase, and what derives from them (GitOps status, the API, the reconciler) covers
every phase."""

import ast
from pathlib import Path

import pytest

from accounts.audit import Actor
from gitops import status
from tests.portal.conftest import make_vcluster
from vclusters import lifecycle, services
from vclusters.lifecycle import EVENT_ROWS, INITIAL, PHASES, TRANSITIONS, Event, Phase, Work

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["accounts", "vclusters", "provisioning", "gateway", "gitops", "portal", "vcp"]
WRITES = {"update", "create", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}


def product_sources():
    for app in PRODUCT:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), str(path))


def test_every_phase_has_its_entry_and_every_transition_joins_phases():
    assert set(PHASES) == set(Phase)
    for (source, event), target in TRANSITIONS.items():
        assert isinstance(source, Phase) and isinstance(event, Event) and isinstance(target, Phase)
    reachable, frontier = {INITIAL}, [INITIAL]
    while frontier:
        phase = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source == phase and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(Phase), f"unreachable: {set(Phase) - reachable}"


def test_a_phase_at_rest_is_left_by_a_person_and_work_in_progress_ends():
    """Nothing waits forever: a phase without work for the workers has a transition a
    person starts (retry, delete), or is the end; every phase in progress has work."""
    for phase, info in PHASES.items():
        if info.in_progress:
            assert info.work in {Work.PROVISION, Work.TEARDOWN}, phase
        elif phase != Phase.DELETED:
            assert {e for (p, e) in TRANSITIONS if p == phase} & {Event.RETRY, Event.DELETE}, phase
    assert not [e for (p, e) in TRANSITIONS if p == Phase.DELETED]


def test_every_event_has_a_writer_in_the_product():
    """An event no product code sends is a transition nobody makes."""
    used = set()
    for path, tree in product_sources():
        if path.name == "lifecycle.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name | ast.Attribute):
                owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
                if owner == "Event":
                    used.add(node.attr)
    assert {e.name for e in Event} - used == set()


def test_nothing_but_the_lifecycle_writes_a_phase():
    writers = []
    for path, tree in product_sources():
        if path.name == "lifecycle.py":
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES
                    and any(k.arg == "phase" for k in node.keywords)):
                writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert writers == [], "write the phase through vclusters.lifecycle.transition()"


@pytest.mark.parametrize("phase", list(Phase))
def test_gitops_status_covers_every_phase(phase):
    """DeleteFailed had no entry in GitOps' own map: KeyError on every pass."""
    observed = status.of_vcluster(1, phase, "", (0, 9), "demo-kubeconfig", [])
    ready = observed.conditions[0]
    assert ready.reason == PHASES[phase].gitops_reason
    assert ready.message if phase != Phase.READY else ready.ok



def test_a_transition_is_a_compare_and_set_with_its_event_row(world, django_capture_on_commit_callbacks):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.PROVISIONING)
    stale = type(vcluster).objects.get(pk=vcluster.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        assert lifecycle.transition(vcluster, Event.FAIL, message="broken") == Phase.FAILED
    assert callbacks == []  # Failed asks for no work
    assert [(e.kind, e.message) for e in vcluster.events.all()] == [(EVENT_ROWS[Event.FAIL], "broken")]
    # A writer that saw Provisioning loses: nothing is written.
    assert lifecycle.transition(stale, Event.READY, message="") is None
    stale.refresh_from_db()
    assert (stale.phase, stale.message) == (Phase.FAILED, "broken")
    assert lifecycle.transition(stale, Event.TORN_DOWN) is None  # does not apply to Failed


def test_retry_and_delete_ask_for_work_once_committed(world, django_capture_on_commit_callbacks):
    failed = make_vcluster(world.alpha, "web", phase=Phase.DELETE_FAILED, message="stuck")
    with django_capture_on_commit_callbacks() as callbacks:
        services.retry_vcluster(Actor(world.teammate), failed)
    assert failed.phase == Phase.DELETING and len(callbacks) == 1
    ready = make_vcluster(world.alpha, "api", phase=Phase.READY)
    with django_capture_on_commit_callbacks() as callbacks:
        services.delete_vcluster(Actor(world.teammate), ready)
    assert ready.phase == Phase.DELETING and len(callbacks) == 1


def test_the_api_says_whether_work_is_under_way_and_whether_retry_applies(world, client):
    client.force_login(world.teammate)
    for phase in Phase:
        vcluster = make_vcluster(world.alpha, f"vc-{phase.lower()}", phase=phase)
        body = client.get(f"/api/v1/vclusters/{vcluster.pk}/").json()
        assert (body["in_progress"], body["retryable"]) == (
            PHASES[phase].in_progress, phase in lifecycle.RETRYABLE), phase
