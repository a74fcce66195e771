"""The HTTP API of the fake cluster, through the official client and raw HTTP."""

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.kube import start
from sandbox.kube.patch import json_patch, merge_patch, strategic_merge

from .conftest import api_client

NS = "default"


def deployment_body(name="web", image="nginx:1.0", replicas=2, labels=None):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80}],
                        },
                        {"name": "sidecar", "image": "envoy:1"},
                    ]
                },
            },
        },
    }


def call(kube, method, path, body=None, headers=None):
    """Raw request → (status, headers, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(kube.url + path, data=data, method=method)
    for name, value in (headers or {"Content-Type": "application/json"}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read() or b"null")


def watch_lines(kube, path):
    """Read a whole (finite) watch stream and return its events."""
    with urllib.request.urlopen(kube.url + path, timeout=15) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


# ------------------------------------------------------------------ discovery
def test_version_and_discovery(kube):
    assert call(kube, "GET", "/version")[2]["gitVersion"] == "v1.32.4"
    assert call(kube, "GET", "/version")[2]["minor"] == "32"
    assert call(kube, "GET", "/api")[2]["versions"] == ["v1"]
    groups = call(kube, "GET", "/apis")[2]["groups"]
    assert groups[0]["preferredVersion"]["groupVersion"] == "apps/v1"
    apps = {r["name"]: r for r in call(kube, "GET", "/apis/apps/v1")[2]["resources"]}
    assert apps["deployments"]["shortNames"] == ["deploy"]
    assert apps["deployments"]["categories"] == ["all"]
    assert apps["replicasets"]["shortNames"] == ["rs"]
    assert "deployments/scale" in apps
    assert "deployments/status" in apps
    core = {r["name"]: r for r in call(kube, "GET", "/api/v1")[2]["resources"]}
    assert core["pods"]["shortNames"] == ["po"]
    assert core["namespaces"]["shortNames"] == ["ns"]
    assert not core["namespaces"]["namespaced"]
    assert core["events"]["shortNames"] == ["ev"]


# ------------------------------------------------------------------ the client
def test_client_create_read_list_replace_delete(kube, apps, core):
    created = apps.create_namespaced_deployment(NS, deployment_body())
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.revision_history_limit == 10
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 5)

    read = apps.read_namespaced_deployment("web", NS)
    assert read.status.available_replicas == 2
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]
    assert len(apps.list_deployment_for_all_namespaces().items) == 1
    pods = core.list_namespaced_pod(NS, label_selector="app=web")
    assert len(pods.items) == 2
    assert pods.items[0].status.phase == "Running"

    read.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment("web", NS, read)
    assert replaced.metadata.generation == 2
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)

    # A stale resourceVersion is a 409 Conflict.
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", NS, read)
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "Conflict"

    apps.delete_namespaced_deployment("web", NS)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", NS)
    assert err.value.status == 404
    status = json.loads(err.value.body)
    assert status["message"] == 'deployments.apps "web" not found'
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    kube.wait_for(lambda c: not c.raw("pods", NS) and not c.raw("replicasets", NS), 3)


def test_client_patch_is_strategic_merge(kube, apps):
    apps.create_namespaced_deployment(NS, deployment_body())
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "image": "nginx:2.0", "env": [{"name": "B", "value": "3"}]}]}
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", NS, patch)
    app, sidecar = patched.spec.template.spec.containers
    assert (app.image, sidecar.image) == ("nginx:2.0", "envoy:1")
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "3")]
    assert app.ports[0].container_port == 80
    assert patched.metadata.generation == 2

    # A list body is a JSON patch.
    patched = apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 5}])
    assert patched.spec.replicas == 5
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 1}])
    assert err.value.status == 422


def test_client_scale_and_status_subresources(kube, apps):
    apps.create_namespaced_deployment(NS, deployment_body())
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 5)
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web")
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 5)
    assert apps.read_namespaced_deployment_status("web", NS).status.ready_replicas == 4


def test_client_watch_resumes_and_gets_410_after_compaction(kube, apps):
    apps.create_namespaced_deployment(NS, deployment_body(replicas=1))
    listed = apps.list_namespaced_deployment(NS)
    rv = listed.metadata.resource_version
    apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "1"}}})
    events = []
    for event in watch.Watch().stream(apps.list_namespaced_deployment, NS, resource_version=rv, timeout_seconds=1):
        events.append(event)
    assert events
    assert all(e["type"] == "MODIFIED" for e in events)
    # The controller's status writes may come first; the label change must be among them.
    assert any((e["object"].metadata.labels or {}).get("x") == "1" for e in events)
    # No gaps or duplicates: resourceVersions strictly increase.
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(set(rvs))
    assert rvs[0] > int(rv)

    kube.compact()
    apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "2"}}})
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(apps.list_namespaced_deployment, NS, resource_version=rv, timeout_seconds=1):
            pass
    assert err.value.status == 410


def test_client_watch_all_namespaces_with_bookmarks(kube, apps):
    kube.cluster.create("namespaces", "", {"metadata": {"name": "prod"}})
    kube.create_deployment("prod", "web", "nginx:1", replicas=1)
    events = list(
        watch.Watch().stream(apps.list_deployment_for_all_namespaces, allow_watch_bookmarks=True, timeout_seconds=1)
    )
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"].metadata.namespace == "prod"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks  # the client leaves bookmark objects as raw dicts
    assert bookmarks[-1]["object"]["metadata"]["resourceVersion"] == str(kube.cluster.rv)


def test_client_bearer_token():
    with start(ready_after=0.1, token="s3cret") as kube:
        with api_client(kube.url) as api:
            with pytest.raises(ApiException) as err:
                client.AppsV1Api(api).list_namespaced_deployment(NS)
            assert err.value.status == 401
            assert json.loads(err.value.body)["reason"] == "Unauthorized"
        with api_client(kube.url, token="s3cret") as api:
            assert client.AppsV1Api(api).list_namespaced_deployment(NS).items == []


# -------------------------------------------------------------------- errors
def test_status_errors(kube):
    body = deployment_body()
    status, _, reply = call(kube, "POST", "/apis/apps/v1/namespaces/nope/deployments", body)
    assert (status, reply["reason"], reply["message"]) == (
        404,
        "NotFound",
        'namespaces "nope" not found',
    )
    assert call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", body)[0] == 201
    status, _, reply = call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert (status, reply["reason"]) == (409, "AlreadyExists")
    bad = deployment_body("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    status, _, reply = call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", bad)
    assert (status, reply["reason"], reply["kind"]) == (422, "Invalid", "Status")
    status, _, reply = call(
        kube,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        {"spec": {}},
        {"Content-Type": "application/apply-patch+yaml"},
    )
    # Server-side apply needs a field manager.
    assert (status, reply["reason"]) == (422, "Invalid")
    assert "fieldManager: Required value" in reply["message"]
    status, _, reply = call(
        kube,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        {"spec": {}},
        {"Content-Type": "application/x-yaml-patch"},
    )
    assert (status, reply["reason"]) == (415, "UnsupportedMediaType")
    request = urllib.request.Request(
        kube.url + "/apis/apps/v1/namespaces/default/deployments",
        data=b"{not json",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 400
    assert call(kube, "GET", "/apis/apps/v1/namespaces/default/widgets")[0] == 404


def test_namespaces_create_and_delete(kube):
    assert call(kube, "POST", "/api/v1/namespaces", {"metadata": {"name": "prod"}})[0] == 201
    assert call(kube, "POST", "/apis/apps/v1/namespaces/prod/deployments", deployment_body())[0] == 201
    kube.wait_for(lambda c: c.raw("pods", "prod"), 3)
    assert call(kube, "DELETE", "/api/v1/namespaces/prod")[0] == 200
    assert not kube.cluster.raw("deployments", "prod")
    assert not kube.cluster.raw("pods", "prod")


# --------------------------------------------------------------------- tables
def test_table_output(kube):
    call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment_body())
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 5)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    _, _, deployments = call(kube, "GET", "/apis/apps/v1/namespaces/default/deployments", None, accept)
    assert deployments["kind"] == "Table"
    names = [(c["name"], c["priority"]) for c in deployments["columnDefinitions"]]
    assert names == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert deployments["rows"][0]["cells"][:4] == ["web", "2/2", 2, 2]
    assert deployments["rows"][0]["cells"][5:] == ["app,sidecar", "nginx:1.0,envoy:1", "app=web"]
    assert deployments["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, _, pods = call(kube, "GET", "/api/v1/pods", None, accept)
    assert [c["name"] for c in pods["columnDefinitions"]][:7] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
    ]
    assert pods["rows"][0]["cells"][1:4] == ["2/2", "Running", "0"]
    _, _, rss = call(kube, "GET", "/apis/apps/v1/namespaces/default/replicasets", None, accept)
    assert [c["name"] for c in rss["columnDefinitions"]] == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    for path in ("/api/v1/namespaces", "/api/v1/namespaces/default/events"):
        assert call(kube, "GET", path, None, accept)[2]["rows"]


# ---------------------------------------------------------------------- watch
def test_watch_field_and_label_selectors(kube):
    call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment_body("web"))
    call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment_body("api"))
    by_field = watch_lines(
        kube,
        "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dapi",
    )
    assert by_field
    assert {e["object"]["metadata"]["name"] for e in by_field} == {"api"}
    by_label = watch_lines(kube, "/apis/apps/v1/deployments?watch=true&timeoutSeconds=1&labelSelector=app%20in%20(web)")
    assert by_label
    assert {e["object"]["metadata"]["name"] for e in by_label} == {"web"}
    assert by_label[0]["type"] == "ADDED"
    pods = watch_lines(kube, "/api/v1/pods?watch=true&timeoutSeconds=1&labelSelector=app!=web")
    assert pods
    assert {e["object"]["metadata"]["labels"]["app"] for e in pods} == {"api"}


def test_watch_bookmarks_and_clean_end(kube):
    started = time.monotonic()
    events = watch_lines(
        kube,
        "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1"
        "&allowWatchBookmarks=true&resourceVersion=1",
    )
    assert 0.9 < time.monotonic() - started < 3
    bookmark = events[0]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "Deployment"
    assert bookmark["object"]["metadata"]["resourceVersion"] == str(kube.cluster.rv)
    without = watch_lines(
        kube,
        "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1&resourceVersion=1",
    )
    assert without == []


def test_watch_resume_has_no_gap_or_duplicate(kube):
    call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment_body())
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 5)
    base = "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1"
    everything = watch_lines(kube, base + "&resourceVersion=1")
    middle = everything[len(everything) // 2]["object"]["metadata"]["resourceVersion"]
    resumed = watch_lines(kube, base + f"&resourceVersion={middle}")
    rvs = [e["object"]["metadata"]["resourceVersion"] for e in everything]
    assert [e["object"]["metadata"]["resourceVersion"] for e in resumed] == rvs[rvs.index(middle) + 1 :]


def test_watch_live_events_and_410(kube):
    conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=10)
    rv = kube.cluster.rv
    conn.request("GET", f"/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion={rv}")
    response = conn.getresponse()
    call(kube, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment_body())
    first = json.loads(response.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "web")
    conn.close()

    kube.compact()
    events = watch_lines(kube, f"/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion={rv}")
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    # POST /sandbox/compact does the same over HTTP.
    assert call(kube, "POST", "/sandbox/compact", {})[0] == 200


def test_bounded_history_expires_old_versions():
    with start(ready_after=0.1, history_size=5) as kube:
        for i in range(10):
            kube.cluster.create("namespaces", "", {"metadata": {"name": f"ns{i}"}})
        events = watch_lines(kube, "/api/v1/namespaces?watch=true&timeoutSeconds=1&resourceVersion=1")
    assert events[0]["object"]["reason"] == "Expired"


# ---------------------------------------------------------------------- patch
def test_strategic_merge_directives():
    target = {
        "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
        "volumes": [{"name": "v1"}, {"name": "v2"}],
        "labels": {"x": "1", "y": "2"},
    }
    patch = {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "3"}],
        "volumes": [{"name": "v1", "$patch": "delete"}],
        "labels": {"y": None},
    }
    assert strategic_merge(target, patch) == {
        "containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "3"}],
        "volumes": [{"name": "v2"}],
        "labels": {"x": "1"},
    }
    assert strategic_merge(target, {"labels": {"$patch": "replace", "z": "3"}})["labels"] == {"z": "3"}


def test_merge_and_json_patch():
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {
        "a": {"c": 2},
        "l": [2],
    }
    doc = {"a": {"list": [1, 2]}}
    assert json_patch(
        doc,
        [
            {"op": "add", "path": "/a/list/-", "value": 3},
            {"op": "remove", "path": "/a/list/0"},
            {"op": "add", "path": "/b", "value": "x"},
            {"op": "test", "path": "/b", "value": "x"},
            {"op": "replace", "path": "/a/list/0", "value": 9},
        ],
    ) == {"a": {"list": [9, 3]}, "b": "x"}


# ----------------------------------------------------------------- seed / CLI
def test_seed_and_command_line(tmp_path: Path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "namespaces: [staging]\ndeployments:\n  - {namespace: prod, name: web, image: 'nginx:1.0', replicas: 2}\n"
    )
    with start(ready_after=0.05, seed=str(seed)) as kube:
        kube.wait_for(lambda c: kube.rollout_complete("prod", "web"), 5)
        assert {n["metadata"]["name"] for n in kube.cluster.list("namespaces")[0]} == {
            "default",
            "prod",
            "staging",
        }

    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "qa"}},
        {**deployment_body("api"), "metadata": {"name": "api", "namespace": "qa"}},
    ]
    with start(ready_after=0.05, seed=manifests) as kube:
        kube.wait_for(lambda c: kube.rollout_complete("qa", "api"), 5)

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.kube",
            "--port",
            "0",
            "--ready-after",
            "0.05",
            "--seed",
            str(seed),
            "--token",
            "t",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        url = process.stdout.readline().split()[-1]
        request = urllib.request.Request(
            url + "/apis/apps/v1/namespaces/prod/deployments/web",
            headers={"Authorization": "Bearer t"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["spec"]["replicas"] == 2
    finally:
        process.terminate()
        process.wait(timeout=5)
