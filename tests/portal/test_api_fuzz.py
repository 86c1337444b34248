"""Fuzzing the REST API from its own OpenAPI schema (schemathesis), over real HTTP.

A live server on PostgreSQL, a platform admin with a Bearer token (who may call every
operation), and for each operation a bounded, derandomized number of valid and of
invalid requests, so the run is repeatable and short (sequences are reset, so ids do
not depend on the tests before). No response may be a 5xx or break the schema (status
code, content type, headers, body, wrong tokens answered 401). Every operation is
tried and all failures are reported together.

Not checked, both because the schema cannot say what the server does:
- that every schema-valid request is accepted: the schema types names and quantities
  as plain strings, which the server parses (DNS labels, Kubernetes quantities),
  refusing most random strings with a documented 400;
- that every schema-violating request is refused: DRF trims surrounding whitespace
  before it checks a string's length, so "  name" passes a maxLength that its padding
  exceeds. Invalid requests are still sent, and must get a documented answer.

schemathesis' own pytest integration (`from_fixture`) does not run on pytest 9 (it
renames test nodes through an attribute pytest no longer has), so the test drives
schemathesis' Hypothesis strategies itself.

Host-cluster writes are left out: their kubeconfig check connects to the server the
body names, and a fuzzer must send traffic nowhere but this machine. Their bad input
is covered in test_host_clusters.py.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis import GenerationMode, checks

from tests.portal.conftest import make_team, make_user, require_postgresql, token_for

CASES_PER_OPERATION_AND_MODE = 12


@pytest.fixture
def api_schema(live_server, django_db_reset_sequences, monkeypatch):
    require_postgresql()
    # Schemathesis also sends wrong tokens on purpose; throttling is tested elsewhere.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/min", "user": "100000/min"})
    admin = make_user("fuzz-admin", is_staff=True)
    make_team("alpha")
    # Generous timeouts: the first request to a live server imports the whole portal,
    # and two cores may be busy with other work.
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", timeout=60)
    schema.config.update(request_timeout=30)
    return admin, schema.exclude(path_regex="^/api/v1/host-clusters/", method=["POST", "PUT", "PATCH"])


def fuzz(operation, mode: GenerationMode, token: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=CASES_PER_OPERATION_AND_MODE, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                               excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection])

    run()


def test_it_answers_every_generated_request_within_its_schema(api_schema):
    admin, schema = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, "the schema lost its operations"
    failures = {}
    for operation in operations:
        for mode in GenerationMode:
            try:
                # A token per run: DELETE /tokens/{id}/ may revoke the one it is given.
                fuzz(operation, mode, token_for(admin))
            # Collected, then reported all at once. Schemathesis raises its findings as a
            # BaseExceptionGroup, Hypothesis and the transport as plain exceptions.
            except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001
                failures[f"{operation.label} ({mode.value})"] = failure
    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())


# What the fuzzing found, pinned down as plain tests.

@pytest.mark.django_db
def test_it_refuses_a_page_size_that_is_not_a_positive_number(api):
    for page_size in ["null", "-1", "0", "²"]:
        r = api("teammate").get(f"/api/v1/vclusters/?page_size={page_size}")
        assert r.status_code == 400 and r.json()["errors"] == {"page_size": ["Must be a whole number from 1."]}
    assert api("teammate").get("/api/v1/vclusters/?page_size=2").status_code == 200


@pytest.mark.django_db
def test_it_answers_unmatched_api_urls_with_the_error_shape_and_pages_with_html(api, client):
    r = api("teammate").get("/api/v1/teams/no.such.slug/policy/")
    assert r.status_code == 404 and r.json() == {"message": "Not found.", "code": "not_found", "errors": {}}
    assert client.get("/no/such/page/")["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_it_documents_the_error_answers_of_every_operation(client):
    schema = client.get("/api/schema/?format=json").json()
    assert "Error" in schema["components"]["schemas"]
    for path, path_item in schema["paths"].items():
        for method, operation in path_item.items():
            assert {"400", "401", "403", "404", "429"} <= set(operation["responses"]), f"{method} {path}"
