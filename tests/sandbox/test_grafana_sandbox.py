"""The Grafana sandbox: annotations API per PROTOCOLS.md §4 and solo panel pages."""

import time

import pytest
import requests

from sandbox.grafana import start
from sandbox.grafana.panel import parse_panel_id, parse_refresh, parse_time

TOKEN = "glsa_sandbox"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def grafana():
    with start(token=TOKEN) as handle:
        yield handle


@pytest.fixture(autouse=True)
def no_faults(grafana):
    grafana.clear_faults()


def post(grafana, body, headers=AUTH):
    return requests.post(f"{grafana.url}/api/annotations", json=body, headers=headers, timeout=5)


def find(grafana, **params):
    reply = requests.get(f"{grafana.url}/api/annotations", params=params, headers=AUTH, timeout=5)
    assert reply.status_code == 200
    return reply.json()


def test_add_patch_find_and_delete_a_region(grafana):
    body = {"dashboardUID": "web-dash", "panelId": 1, "time": T0, "tags": ["deploy", "app:web"]}
    reply = post(grafana, body | {"text": "Deploy web 1.4.2 (rev 7)"})
    assert reply.status_code == 200
    assert reply.json()["message"] == "Annotation added"
    annotation_id = reply.json()["id"]
    assert grafana.annotations[-1]["timeEnd"] == T0  # a point until the rollout finishes

    url = f"{grafana.url}/api/annotations/{annotation_id}"
    patched = requests.patch(url, json={"timeEnd": T0 + 60_000}, headers=AUTH, timeout=5)
    assert patched.json() == {"message": "Annotation patched"}

    [found] = find(grafana, dashboardUID="web-dash", tags=["deploy", "app:web"], panelId=1)
    assert (found["id"], found["timeEnd"]) == (annotation_id, T0 + 60_000)
    assert found["text"] == "Deploy web 1.4.2 (rev 7)"
    assert requests.delete(url, headers=AUTH, timeout=5).json()["message"] == "Annotation deleted"
    assert requests.patch(url, json={}, headers=AUTH, timeout=5).status_code == 404


def test_find_filters_by_window_tags_and_limit(grafana):
    for offset, tags in ((0, ["deploy", "env:prod"]), (10, ["deploy", "env:qa"]), (20, ["note"])):
        post(grafana, {"time": T0 + offset * 3_600_000, "text": f"at {offset}", "tags": tags})
    window = {"from": T0 - 1, "to": T0 + 15 * 3_600_000}
    assert {a["text"] for a in find(grafana, **window, tags="deploy")} == {"at 0", "at 10"}
    assert [a["text"] for a in find(grafana, tags=["deploy", "env:qa"])] == ["at 10"]
    assert len(find(grafana, tags=["env:qa", "note"], matchAny="true")) == 2
    assert len(find(grafana, **window, tags="deploy", limit=1)) == 1


def test_auth_bad_bodies_and_faults(grafana):
    assert post(grafana, {"text": "x"}, headers={}).status_code == 401
    assert post(grafana, {"text": "x"}, headers={"Authorization": "Bearer no"}).json() == {"message": "Unauthorized"}
    assert post(grafana, {"time": "yesterday", "text": "x"}).status_code == 400
    assert post(grafana, {"tags": ["deploy"]}).status_code == 400  # text is required
    raw = requests.post(f"{grafana.url}/api/annotations", data="{", headers=AUTH, timeout=5)
    assert raw.status_code == 400
    grafana.set_fault(status=503, count=1)
    assert post(grafana, {"text": "x"}).status_code == 503
    assert post(grafana, {"text": "x"}).status_code == 200


def test_panel_page_draws_series_and_annotations(grafana):
    post(grafana, {"dashboardUID": "web", "time": T0, "timeEnd": T0 + 600_000, "text": "Deploy"})
    params = {"from": T0 - 3_600_000, "to": T0 + 3_600_000, "var-app": "web", "theme": "light"}
    reply = requests.get(grafana.panel_url("web", 2, params), timeout=5)
    assert reply.status_code == 200
    assert "X-Frame-Options" not in reply.headers
    page = reply.text
    assert "Error rate (5xx)" in page
    assert "app=web" in page
    assert "<polyline" in page
    assert 'class="annotation-region"' in page
    assert requests.get(grafana.panel_url("web", 2, params), timeout=5).text == page
    other = requests.get(grafana.panel_url("web", 2, params | {"var-app": "api"}), timeout=5)
    assert other.text != page


def test_panel_page_escapes_query_values_and_refreshes(grafana):
    params = {"var-app": "<script>alert(1)</script>", "refresh": "30s", "from": "now-15m"}
    page = requests.get(grafana.panel_url("web", "panel-4", params), timeout=5).text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert 'http-equiv="refresh" content="30"' in page
    assert "Pods available" in page


def test_time_and_parameter_parsing():
    now = int(time.time() * 1000)
    assert parse_time("now", now, 0) == now
    assert parse_time("now-6h", now, 0) == now - 6 * 3_600_000
    assert parse_time("now-15m", now, 0) == now - 15 * 60_000
    assert parse_time(str(T0), now, 0) == T0
    assert parse_time("garbage", now, 7) == 7
    assert (parse_refresh("1m"), parse_refresh("1s"), parse_refresh("x")) == (60, 5, None)
    assert (parse_panel_id("3"), parse_panel_id("panel-3"), parse_panel_id(None)) == (3, 3, 1)
