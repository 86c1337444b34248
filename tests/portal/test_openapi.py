import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_it_serves_a_valid_openapi_3_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {
        "/api/v1/teams/", "/api/v1/teams/{slug}/", "/api/v1/teams/{slug}/quota/", "/api/v1/teams/{team_slug}/members/",
        "/api/v1/teams/{team_slug}/members/{username}/", "/api/v1/vclusters/", "/api/v1/vclusters/{id}/",
        "/api/v1/vclusters/{id}/kubeconfig/", "/api/v1/tokens/", "/api/v1/tokens/{id}/", "/api/v1/audit-events/",
        "/api/v1/vclusters/{id}/retry/", "/api/v1/teams/{slug}/policy/", "/api/v1/host-clusters/",
        "/api/v1/host-clusters/{name}/", "/api/v1/vclusters/{id}/access-log/", "/api/v1/vclusters/{id}/activity/",
        "/api/v1/vclusters/{id}/access-tokens/", "/api/v1/vclusters/{id}/access-tokens/{token_id}/",
        "/api/v1/vclusters/{id}/credentials/",
    } <= paths
    components = schema["components"]["schemas"]
    assert "kubeconfig" not in components["HostCluster"]["properties"]
    assert "kubeconfig" in components["HostClusterCreateRequest"]["properties"]
    assert {"placement", "events", "receipt"} <= set(components["VClusterDetail"]["properties"])
    assert not {"placement", "events", "receipt"} & set(components["VCluster"]["properties"])
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_it_serves_the_docs_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower() and "/static/" in html


def test_it_generates_the_schema_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
