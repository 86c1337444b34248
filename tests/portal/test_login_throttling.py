"""Login lockout (django-axes) and API throttles (DRF), through the real views.

The limits are set low here on purpose; the suite's other tests log in with
force_login, which never counts as a login attempt.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.portal.conftest import PASSWORD, token_for
from tests.portal.test_settings import load_settings

pytestmark = pytest.mark.django_db

LIMIT = 3
ELSEWHERE = "192.0.2.7"  # TEST-NET-1: a header value only, no traffic goes there


@pytest.fixture(autouse=True)
def _low_limits(settings, monkeypatch):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    # DRF reads its rates into the class when it is imported.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": "5/min"})


def log_in(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def lock_out(client: Client, username: str):
    responses = [log_in(client, username, "wrong") for _ in range(LIMIT)]
    assert [r.status_code for r in responses] == [200] * (LIMIT - 1) + [429]
    return responses[-1]


def is_logged_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def test_it_locks_the_form_out_after_the_failure_limit_even_for_the_right_password(world):
    client = Client()
    lock_out(client, "teammate")
    r = log_in(client, "teammate", PASSWORD)
    assert r.status_code == 429
    assert "Too many failed logins for this user from your address. Try again in 15" in r.content.decode()
    assert r["Retry-After"] == str(15 * 60)
    assert not is_logged_in(client)


def test_it_leaves_other_users_and_other_addresses_alone(world):
    lock_out(Client(), "teammate")
    other_user = Client()
    assert log_in(other_user, "owner", PASSWORD).status_code == 302
    assert is_logged_in(other_user)
    other_address = Client(REMOTE_ADDR=ELSEWHERE)
    assert log_in(other_address, "teammate", PASSWORD).status_code == 302
    assert is_logged_in(other_address)


def test_it_lets_the_user_in_after_the_cool_off(world, settings):
    client = Client()
    lock_out(client, "teammate")
    # The cool-off is counted from the last failure: move the failures back past it.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME)
    assert log_in(client, "teammate", PASSWORD).status_code == 302
    assert is_logged_in(client)


def test_it_keeps_the_api_open_to_a_valid_token_during_a_lockout(world):
    token = token_for(world.teammate)
    lock_out(Client(), "teammate")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/vclusters/").status_code == 200


def test_it_throttles_anonymous_requests_by_address_with_retry_after(world):
    anonymous = APIClient()
    assert [anonymous.get("/api/schema/").status_code for _ in range(3)] == [200] * 3
    r = anonymous.get("/api/schema/")
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    assert b"Request was throttled" in r.content
    assert APIClient(REMOTE_ADDR=ELSEWHERE).get("/api/schema/").status_code == 200


def test_it_throttles_failed_tokens_by_address_but_not_a_valid_token(world):
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert [guesser.get("/api/v1/teams/").status_code for _ in range(3)] == [401] * 3
    r = guesser.get("/api/v1/teams/")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert r.json()["code"] == "throttled"
    valid = APIClient()
    valid.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(world.teammate)}")
    assert valid.get("/api/v1/teams/").status_code == 200


def test_it_throttles_each_user_at_the_user_rate(world):
    teammate, owner = APIClient(), APIClient()
    teammate.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(world.teammate)}")
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(world.owner)}")
    assert [teammate.get("/api/v1/teams/").status_code for _ in range(5)] == [200] * 5
    assert teammate.get("/api/v1/teams/").status_code == 429
    assert owner.get("/api/v1/teams/").status_code == 200


def test_the_api_serves_unthrottled_while_the_throttles_cache_is_down(world, settings, caplog):
    """Redis restarting must not fail the API: the limits pause (logged), requests go on."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1
    teammate, guesser = APIClient(), APIClient()
    teammate.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(world.teammate)}")
    guesser.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert [teammate.get("/api/v1/teams/").status_code for _ in range(7)] == [200] * 7
    assert [guesser.get("/api/v1/teams/").status_code for _ in range(5)] == [401] * 5
    assert "API throttles paused: their cache is unreachable" in caplog.text


@pytest.mark.parametrize("variable, value", [
    ("VCPORTAL_API_THROTTLE_ANON", "60 per minute"),
    ("VCPORTAL_API_THROTTLE_USER", "many/min"),
    ("VCPORTAL_LOGIN_FAILURE_LIMIT", "five"),
    ("VCPORTAL_LOGIN_COOLOFF", "-1"),
])
def test_it_refuses_malformed_limits_at_start_up(tmp_path, variable, value):
    result = load_settings(tmp_path, **{variable: value})
    assert result.returncode != 0 and variable in result.stderr
