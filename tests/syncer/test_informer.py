"""The informer's list-and-watch loop and the work queue, against scripted servers."""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest
from urllib3.exceptions import ProtocolError

from syncer.informer import Informer
from syncer.kube import PODS, ApiError
from syncer.workqueue import WorkQueue


def pod(name: str, version: str, node: str = "") -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version,
                         "managedFields": [{"manager": "big"}]}, "spec": {"nodeName": node}}


def listing(version: str, *items) -> dict:
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def event(kind: str, obj: dict) -> dict:
    return {"type": kind, "object": obj}


class ScriptedWatch:
    def __init__(self, events, stop: threading.Event | None = None):
        self.events, self.stop = events, stop

    def __iter__(self):
        for item in self.events:
            if isinstance(item, Exception):
                raise item
            yield item
        if self.stop is not None:  # the last watch stays open until closed
            self.stop.wait()

    def close(self):
        if self.stop is not None:
            self.stop.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ScriptedServer:
    """Answers lists and watches from scripts; once the watch script runs out, the watch
    stays open and `idle` is set."""

    server = "scripted"

    def __init__(self, lists: list[dict], watches: list):
        self.lists, self.watches = deque(lists), deque(watches)
        self.calls: list[tuple] = []
        self.idle = threading.Event()

    def list(self, resource, namespace=None, *, label_selector=None):
        self.calls.append(("list",))
        return self.lists.popleft()

    def watch(self, resource, namespace, version, *, label_selector=None, timeout_seconds=300):
        self.calls.append(("watch", version))
        if not self.watches:
            self.idle.set()
            return ScriptedWatch([], threading.Event())
        script = self.watches.popleft()
        if isinstance(script, Exception):
            raise script
        return ScriptedWatch(script)


def run(server: ScriptedServer) -> tuple[Informer, list]:
    seen = []
    informer = Informer(server, PODS)
    informer.add_handler(lambda old, new: seen.append((old and old["metadata"]["resourceVersion"],
                                                       new and new["metadata"]["resourceVersion"])))
    informer.add_index("node", lambda p: [p["spec"]["nodeName"]] if p["spec"]["nodeName"] else [])
    informer.start()
    assert server.idle.wait(5), server.calls
    informer.stop()
    return informer, seen


def test_it_lists_then_applies_watch_events_from_the_lists_version():
    server = ScriptedServer([listing("10", pod("a", "5", "n1"))], [[
        event("ADDED", pod("b", "11", "n1")),
        event("MODIFIED", pod("a", "12", "n2")),
        event("BOOKMARK", {"metadata": {"resourceVersion": "13"}}),
        event("DELETED", pod("b", "14", "n1")),
    ]])
    informer, seen = run(server)
    assert seen == [(None, "5"), (None, "11"), ("5", "12"), ("11", None)]
    assert informer.keys() == ["ns/a"]
    assert [p["metadata"]["name"] for p in informer.by_index("node", "n2")] == ["a"]
    assert informer.by_index("node", "n1") == []
    assert "managedFields" not in informer.get("ns/a")["metadata"]
    assert server.calls == [("list",), ("watch", "10"), ("watch", "14")]


def test_a_dropped_watch_resumes_from_the_last_version_seen():
    server = ScriptedServer([listing("10")], [
        [event("ADDED", pod("a", "11")), ProtocolError("connection reset")],
        OSError("connection refused"),
    ])
    informer, seen = run(server)
    assert server.calls == [("list",), ("watch", "10"), ("watch", "11"), ("watch", "11")]
    assert informer.keys() == ["ns/a"]


def test_an_expired_watch_leads_to_a_fresh_list_that_reports_what_changed_meanwhile():
    server = ScriptedServer(
        [listing("10", pod("a", "5"), pod("b", "6")), listing("30", pod("a", "5"), pod("c", "25"))],
        [[event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"})]],
    )
    informer, seen = run(server)
    assert server.calls == [("list",), ("watch", "10"), ("list",), ("watch", "30")]
    assert sorted(informer.keys()) == ["ns/a", "ns/c"]
    assert seen[2:] == [("6", None), (None, "25")], "b deleted, c added, unchanged a not reported again"


def test_a_410_answer_to_the_watch_request_also_relists():
    server = ScriptedServer([listing("10"), listing("20")], [ApiError(410, {"reason": "Expired"})])
    run(server)
    assert server.calls == [("list",), ("watch", "10"), ("list",), ("watch", "20")]


# The work queue ------------------------------------------------------------------

def test_a_key_added_many_times_is_handed_out_once():
    queue = WorkQueue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert [queue.get(), queue.get()] == ["a", "b"]
    assert len(queue) == 0


def test_a_key_added_while_being_worked_on_comes_back_after_done_not_before():
    queue = WorkQueue()
    queue.add("a")
    assert queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0, "not handed to a second worker"
    queue.done("a")
    assert queue.get() == "a"


def test_delayed_keys_arrive_in_due_order_and_only_the_earliest_addition_of_a_key_counts():
    queue = WorkQueue()
    queue.add_after("later", 0.3)
    queue.add_after("soon", 0.05)
    queue.add_after("soon", 0.5)
    assert [queue.get(), queue.get()] == ["soon", "later"]
    queue.done("soon")
    queue.done("later")
    time.sleep(0.6)  # past when the second addition of "soon" would have been due
    queue.add("x")
    assert queue.get() == "x"


def test_failures_back_off_exponentially_until_forgotten():
    queue = WorkQueue(retry_first=0.1, retry_limit=0.3)
    assert [queue.retry("a") for _ in range(4)] == [0.1, 0.2, 0.3, 0.3]
    queue.forget("a")
    assert queue.retry("a") == 0.1


def test_shutting_down_releases_waiting_workers():
    queue = WorkQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.shut_down()
    worker.join(2)
    assert got == [None]


@pytest.mark.parametrize("status", [404, 409, 410])
def test_api_errors_say_what_they_are(status):
    error = ApiError(status, {"reason": "R", "message": "m"})
    assert (error.not_found, error.conflict, error.gone) == (status == 404, status == 409, status == 410)
    assert str(error) == f"{status} R: m"
