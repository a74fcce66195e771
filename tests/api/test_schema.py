"""The OpenAPI schema at /api/schema/ and the docs at /api/docs/: valid OpenAPI 3, every
endpoint, parameter, error shape and example in it, and docs served by the portal itself
under its Content-Security-Policy (no outside CDN, no inline script or style)."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from tests.support.api import api_as

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema(cast):
    response = api_as(cast.erin, "read").get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def api_v1_paths() -> set[str]:
    """Every /api/v1/ route, written as the schema writes it (`<int:pk>` → `{id}`)."""
    found = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and (prefix + str(pattern.pattern)).startswith("api/v1/"):
                route = prefix + str(pattern.pattern)
                found.add(
                    "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + ("id" if m[1] == "pk" else m[1]) + "}", route)
                )

    walk(get_resolver().url_patterns, "")
    return found


def test_it_serves_a_valid_openapi_3_schema(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def test_it_documents_every_endpoint(schema):
    assert set(schema["paths"]) == api_v1_paths()


def test_it_names_and_describes_every_operation(schema):
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids)) == 27
    for path, method, operation in operations(schema):
        assert operation.get("summary"), (method, path)
        assert operation.get("tags"), (method, path)


def test_it_describes_every_parameter(schema):
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (method, path, parameter["name"])


def test_it_documents_the_error_shape_with_an_example_for_every_error(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "401" in responses, (method, path)
        if method == "post":
            assert "403" in responses, (method, path)
        if operation.get("requestBody") or any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"]["application/json"]
                reference = content["schema"]["$ref"].rsplit("/", 1)[1]
                assert reference in ("Error", "ValidationError"), (method, path, status)
                assert content.get("examples"), (method, path, status)
    errors = schema["components"]["schemas"]
    assert set(errors["Error"]["required"]) == {"detail", "reasons"}
    assert set(errors["ValidationError"]["required"]) == {"detail", "reasons", "errors"}


def test_it_gives_a_request_example_for_every_write_with_a_body(schema):
    for path, method, operation in operations(schema):
        if operation.get("requestBody"):
            assert operation["requestBody"]["content"]["application/json"].get("examples"), (method, path)


def test_it_links_what_a_create_returns_to_what_can_be_done_next(schema):
    created = schema["paths"]["/api/v1/deployments/"]["post"]["responses"]["201"]["links"]
    assert created["ApproveDeployment"] == {
        "operationId": "approveDeployment",
        "parameters": {"id": "$response.body#/id"},
    }
    release = schema["paths"]["/api/v1/releases/"]["post"]["responses"]["201"]["links"]
    assert release["RequestDeployment"]["requestBody"] == {"release": "$response.body#/id"}
    ids = {operation["operationId"] for _, _, operation in operations(schema)}
    for _, _, operation in operations(schema):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids


def test_it_bounds_the_long_poll_by_the_setting(cast, settings):
    settings.API_LONG_POLL_MAX_SECONDS = 5
    schema = api_as(cast.erin, "read").get("/api/schema/?format=json").json()
    parameters = schema["paths"]["/api/v1/deployments/{id}/"]["get"]["parameters"]
    assert next(p for p in parameters if p["name"] == "wait")["schema"]["maximum"] == 5


# The docs page ------------------------------------------------------------------------------------


def test_it_serves_the_docs_and_their_assets_from_the_portal(cast):
    client = Client()
    client.force_login(cast.erin)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset  # the portal itself, no CDN
        assert client.get(asset).status_code == 200, asset
    assert page["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'; style-src 'self'")


def test_the_docs_script_points_at_the_schema_and_sends_the_csrf_token(cast):
    client = Client()
    client.force_login(cast.erin)
    script = client.get("/api/docs/?script=").content.decode()
    assert 'url: "/api/schema/"' in script
    assert "X-CSRFTOKEN" in script.upper()
