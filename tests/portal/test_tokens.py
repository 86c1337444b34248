import hashlib

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_it_stores_only_the_hash_and_shows_the_token_once(api, world):
    r = api("teammate").post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert r.status_code == 201
    token = r.json()["token"]
    stored = ApiToken.objects.get(pk=r.json()["id"])
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.prefix, stored.digest, stored.name}
    listed = api("teammate").get(f"/api/v1/tokens/{stored.pk}/").json()
    assert "token" not in listed
    assert bearer(token).get("/api/v1/teams/").status_code == 200


def test_it_records_last_use(api, world):
    token = api("teammate").post("/api/v1/tokens/", {"name": "ci"}, format="json").json()
    assert ApiToken.objects.get(pk=token["id"]).last_used_at is None
    bearer(token["token"]).get("/api/v1/vclusters/")
    assert ApiToken.objects.get(pk=token["id"]).last_used_at is not None


def test_it_refuses_revoked_and_unknown_tokens(api, world):
    token = api("teammate").post("/api/v1/tokens/", {"name": "ci"}, format="json").json()
    assert bearer(token["token"]).delete(f"/api/v1/tokens/{token['id']}/").status_code == 204
    r = bearer(token["token"]).get("/api/v1/teams/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Bearer"
    assert bearer("vcp_not-a-token").get("/api/v1/teams/").status_code == 401
    assert AuditEvent.objects.filter(action="token.revoke", target_id=str(token["id"])).exists()


def test_it_refuses_tokens_of_inactive_users(world):
    from tests.portal.conftest import token_for

    token = token_for(world.teammate)
    world.teammate.is_active = False
    world.teammate.save()
    assert bearer(token).get("/api/v1/teams/").status_code == 401


def test_the_command_prints_only_the_token(world, capsys):
    call_command("create_api_token", "owner", "--name", "deploy")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcp_")
    assert ApiToken.objects.get(user=world.owner, name="deploy").digest == hashlib.sha256(lines[0].encode()).hexdigest()
    with pytest.raises(CommandError):
        call_command("create_api_token", "ghost")


def test_the_tokens_page_shows_a_new_token_once(world, client):
    client.force_login(world.teammate)
    r = client.post("/tokens/", {"name": "laptop"})
    token = ApiToken.objects.get(user=world.teammate, name="laptop")
    assert f'id="new-token">{token.prefix}'.encode() in r.content
    assert token.prefix.encode() in client.get("/tokens/").content
    assert b'id="new-token"' not in client.get("/tokens/").content
