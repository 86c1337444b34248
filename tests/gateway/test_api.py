"""The gateway's REST endpoints: who sees what, and the shapes kubectl and people get."""

from datetime import UTC, datetime

import pytest
import yaml
from rest_framework.test import APIRequestFactory, force_authenticate

from gateway.api import KubeconfigView
from gateway.models import AccessRecord, AccessToken
from gateway.recorder import Batch, Recorder, write_batch
from gateway.requestinfo import parse

pytestmark = pytest.mark.django_db


def base(vcluster) -> str:
    return f"/api/v1/vclusters/{vcluster.pk}"


def test_exec_credentials_for_every_role_through_an_api_token(api, ready):
    for persona in ("viewer", "teammate", "owner", "staff"):
        r = api(persona).post(f"{base(ready)}/credentials/")
        assert r.status_code == 201, persona
        assert r.json()["kind"] == "ExecCredential" and r.json()["status"]["token"].startswith("vck_")
    assert api("outsider").post(f"{base(ready)}/credentials/").status_code == 404
    assert api("anonymous").post(f"{base(ready)}/credentials/").status_code == 401


def test_exec_credentials_wait_for_ready(api, world):
    from tests.portal.conftest import make_vcluster

    pending = make_vcluster(world.alpha, "soon")
    r = api("teammate").post(f"{base(pending)}/credentials/")
    assert r.status_code == 409 and r.json()["code"] == "not_ready"


def test_tokens_are_listed_for_their_owner_and_team_admins_and_revoked_at_once(api, world, ready):
    api("teammate").post(f"{base(ready)}/credentials/")
    api("viewer").post(f"{base(ready)}/credentials/")
    mine = api("teammate").get(f"{base(ready)}/access-tokens/").json()
    assert [t["user"] for t in mine["results"]] == ["teammate"]
    assert "token" not in mine["results"][0] and "digest" not in mine["results"][0]
    assert {t["user"] for t in api("owner").get(f"{base(ready)}/access-tokens/").json()["results"]} == {
        "teammate", "viewer"}
    theirs = AccessToken.objects.get(user=world.viewer)
    assert api("teammate").delete(f"{base(ready)}/access-tokens/{theirs.pk}/").status_code == 403
    r = api("owner").delete(f"{base(ready)}/access-tokens/{theirs.pk}/")
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert api("outsider").get(f"{base(ready)}/access-tokens/").status_code == 404


def test_the_access_log_is_paginated_and_visible_to_those_who_see_the_vcluster(api, world, ready):
    info = parse("PATCH", "/api/v1/namespaces/dev/configmaps/app")
    batch = Batch()
    batch.records = [
        {"vcluster_id": ready.pk, "user_id": world.teammate.pk, "username": "teammate",
         "at": datetime(2026, 11, 27, 12, i, tzinfo=UTC), "verb": info.verb, "api_group": "",
         "resource": info.resource, "subresource": "", "namespace": info.namespace, "name": f"app{i}",
         "path": "", "code": 200}
        for i in range(3)
    ]
    write_batch(batch)
    r = api("viewer").get(f"{base(ready)}/access-log/?page_size=2")
    assert r.status_code == 200 and r.json()["count"] == 3 and r.json()["next"]
    first = r.json()["results"][0]
    assert {k: first[k] for k in ("user", "verb", "resource", "namespace", "name", "code")} == {
        "user": "teammate", "verb": "patch", "resource": "configmaps", "namespace": "dev", "name": "app2", "code": 200}
    assert api("outsider").get(f"{base(ready)}/access-log/").status_code == 404
    assert api("staff").get(f"{base(ready)}/access-log/").json()["count"] == 3


def test_reads_are_counted_per_day_and_the_last_request_is_the_activity(api, world, ready):
    day = datetime(2026, 11, 27, 12, tzinfo=UTC)
    for n in range(2):
        batch = Batch()
        batch.reads[(ready.pk, day.date())] = 5
        batch.writes[(ready.pk, day.date())] = 1
        batch.last[ready.pk] = (day.replace(minute=n), "teammate")
        write_batch(batch)
    assert AccessRecord.objects.count() == 0  # reads are not listed
    r = api("viewer").get(f"{base(ready)}/activity/").json()
    assert r["days"] == [{"day": "2026-11-27", "reads": 10, "writes": 2}]
    assert r["last_user"] == "teammate" and r["last_request_at"].startswith("2026-11-27T12:01")
    assert api("outsider").get(f"{base(ready)}/activity/").status_code == 404


async def _note_then_stop(recorder, vcluster_id, user_id):
    recorder.note(vcluster_id, user_id, "teammate", parse("POST", "/api/v1/namespaces/dev/configmaps"), 201,
                  name="app")
    recorder.note(vcluster_id, user_id, "teammate", parse("GET", "/api/v1/namespaces/dev/configmaps"), 200)
    await recorder.stop()


def test_what_is_noted_is_written_on_shutdown(world, ready, transactional_db):
    import asyncio

    from gateway.dbthreads import DatabaseThreads

    db = DatabaseThreads(2)
    recorder = Recorder(db.run, interval=3600)
    asyncio.run(_note_then_stop(recorder, ready.pk, world.teammate.pk))
    db.stop()
    record = AccessRecord.objects.get()
    assert (record.username, record.verb, record.resource, record.name, record.code) == (
        "teammate", "create", "configmaps", "app", 201)
    assert ready.request_counts.get().reads == 1


def test_the_personal_kubeconfig_view_and_the_break_glass_download(world, ready):
    view = KubeconfigView.as_view()

    def get(user, query=""):
        request = APIRequestFactory().get(f"{base(ready)}/kubeconfig/{query}")
        force_authenticate(request, user)
        return view(request, pk=ready.pk)

    r = get(world.viewer)
    assert r.status_code == 200 and 'viewer.kubeconfig"' in r["Content-Disposition"]
    server = yaml.safe_load(r.content)["clusters"][0]["cluster"]["server"]
    assert server == f"http://testserver/kube/vclusters/{ready.pk}"
    assert get(world.teammate, "?admin=true").status_code == 403
    assert get(world.staff, "?admin=true").content.decode() == ready.kubeconfig
    assert get(world.outsider).status_code == 404


def test_the_vcluster_page_fragment_lists_changes_and_the_last_request(world, ready):
    from django.template import Context, Template

    page = Template("{% load gateway %}{% access_list vcluster %}")
    assert "No change has been made" in page.render(Context({"vcluster": ready}))
    batch = Batch()
    batch.records = [{"vcluster_id": ready.pk, "user_id": world.teammate.pk, "username": "teammate",
                      "at": datetime(2026, 11, 27, 12, tzinfo=UTC), "verb": "create", "api_group": "",
                      "resource": "configmaps", "subresource": "", "namespace": "dev", "name": "app", "path": "",
                      "code": 201}]
    batch.last[ready.pk] = (datetime(2026, 11, 27, 12, tzinfo=UTC), "teammate")
    write_batch(batch)
    html = page.render(Context({"vcluster": ready}))
    assert "configmaps dev/app" in html and "teammate" in html and "201" in html


def test_the_page_download_is_personal_too(world, ready):
    from django.test import RequestFactory

    from gateway.views import vcluster_kubeconfig
    from tests.portal.conftest import make_vcluster

    def get(user, vcluster):
        request = RequestFactory().get("/")
        request.user = user
        return vcluster_kubeconfig(request, pk=vcluster.pk)

    r = get(world.viewer, ready)
    assert r.status_code == 200 and yaml.safe_load(r.content)["users"][0]["user"]["token"].startswith("vck_")
    assert get(world.teammate, make_vcluster(world.alpha, "soon")).status_code == 409
