"""The official kubernetes client against what issue 11 added to the sandbox cluster: dry runs,
server-side apply, paging, Exact lists, graceful deletion, logs, access reviews, OpenAPI, and an
idle cluster that does no work."""

import json
import time
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.kube import start
from sandbox.kube.kubelet import Kubelet
from tests.sandbox.conftest import api_client

NS = "default"


def body(name="web", image="nginx:1.0", replicas=2) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def quiet(kube, name="web") -> None:
    """Rolled out with every pod Ready and none Terminating: nothing changes by itself now."""

    def settled(cluster):
        pods = cluster.raw("pods", NS)
        return kube.rollout_complete(NS, name) and all(
            not p["metadata"].get("deletionTimestamp")
            and all(c["ready"] for c in p["status"].get("containerStatuses") or [{"ready": False}])
            for p in pods
        )

    kube.wait_for(settled, 15)


def error_of(call) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


# ---------------------------------------------------------------------------------- dry runs
def test_it_dry_runs_creates_patches_replaces_and_deletes_without_storing_anything(kube, apps, core):
    apps.create_namespaced_deployment(NS, body())
    quiet(kube)
    before = (kube.dump(), kube.cluster.rv)

    created = apps.create_namespaced_deployment(NS, body("other"), dry_run="All")
    assert created.metadata.uid
    assert created.metadata.resource_version is None
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}
    patched = apps.patch_namespaced_deployment("web", NS, patch, dry_run="All")
    assert patched.spec.template.spec.containers[0].image == "nginx:2"
    assert patched.metadata.generation == 2  # answered as the real write would be…
    live = apps.read_namespaced_deployment("web", NS)
    assert patched.metadata.resource_version == live.metadata.resource_version  # …but nothing was written
    live.spec.replicas = 9
    assert apps.replace_namespaced_deployment("web", NS, live, dry_run="All").spec.replicas == 9
    assert (
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}}, dry_run="All").spec.replicas == 5
    )
    pod = core.list_namespaced_pod(NS).items[0].metadata.name
    deleted = core.delete_namespaced_pod(pod, NS, dry_run="All")
    assert deleted.metadata.deletion_timestamp is not None
    apps.delete_namespaced_deployment("web", NS, dry_run="All")
    core.create_namespace({"metadata": {"name": "dry"}}, dry_run="All")

    assert (kube.dump(), kube.cluster.rv) == before


def test_it_validates_a_dry_run_like_the_real_write(kube, apps):
    apps.create_namespaced_deployment(NS, body())
    clash = error_of(lambda: apps.create_namespaced_deployment(NS, body(), dry_run="All"))
    assert (clash.status, json.loads(clash.body)["reason"]) == (409, "AlreadyExists")
    bad = error_of(lambda: apps.create_namespaced_deployment(NS, body("Bad_Name"), dry_run="All"))
    assert bad.status == 422
    assert 'metadata.name: Invalid value: "Bad_Name"' in json.loads(bad.body)["message"]
    odd = error_of(lambda: apps.create_namespaced_deployment(NS, body("x"), dry_run="Some"))
    assert odd.status == 400


# --------------------------------------------------------------------------- server-side apply
def apply(apps, config, manager, force=False):
    return apps.patch_namespaced_deployment(
        config["metadata"]["name"],
        NS,
        config,
        field_manager=manager,
        force=force,
        _content_type="application/apply-patch+yaml",
    )


def test_it_applies_server_side_with_owners_conflicts_and_force(kube, apps):
    created = apply(apps, body(replicas=2), "team-a")
    assert created.spec.replicas == 2
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [("team-a", "Apply")]

    clash = error_of(lambda: apply(apps, body(replicas=5), "team-b"))
    status = json.loads(clash.body)
    assert (clash.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "team-a": .spec.replicas'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a"', "field": ".spec.replicas"}
    ]
    same = apply(apps, body(replicas=2), "team-b")  # the same value: shared, no conflict
    assert same.spec.replicas == 2

    forced = apply(apps, body(replicas=5), "team-b", force=True)
    assert forced.spec.replicas == 5
    owners = {e.manager: e.fields_v1 for e in forced.metadata.managed_fields}
    assert "f:replicas" in owners["team-b"]["f:spec"]
    assert "f:replicas" not in owners["team-a"].get("f:spec", {})


def test_it_removes_fields_a_manager_stops_applying(kube, apps):
    config = body()
    config["metadata"]["labels"] = {"tier": "front", "team": "shop"}
    apply(apps, config, "ci")
    del config["metadata"]["labels"]["team"]
    result = apply(apps, config, "ci")
    assert result.metadata.labels == {"tier": "front"}


def test_it_records_who_changed_what_on_ordinary_writes(kube, apps):
    apps.create_namespaced_deployment(NS, body(), field_manager="deployer")
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}}, field_manager="scaler")
    entries = {e.manager: e for e in apps.read_namespaced_deployment("web", NS).metadata.managed_fields}
    assert entries["deployer"].operation == entries["scaler"].operation == "Update"
    assert "f:replicas" in entries["scaler"].fields_v1["f:spec"]
    assert "f:replicas" not in entries["deployer"].fields_v1["f:spec"]
    assert entries["kube-controller-manager"].subresource == "status" or any(
        e.subresource == "status" for e in apps.read_namespaced_deployment("web", NS).metadata.managed_fields
    )


# ------------------------------------------------------------------------------------- lists
def test_it_pages_lists_with_limit_and_continue(kube, apps, core):
    apps.create_namespaced_deployment(NS, body(replicas=5))
    kube.wait_for(lambda c: len(c.raw("pods", NS)) == 5, 10)
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_pod(NS, limit=2, _continue=token)
        names += [p.metadata.name for p in page.items]
        pages, token = pages + 1, page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - len(names)
    assert pages == 3
    assert sorted(names) == names
    assert len(set(names)) == 5


def test_it_serves_a_consistent_page_after_a_write(kube, core):
    for name in ("a", "b", "c"):
        core.create_namespace({"metadata": {"name": name}})
    first = core.list_namespace(limit=2)
    core.create_namespace({"metadata": {"name": "b2"}})  # would land on page two
    second = core.list_namespace(limit=2, _continue=first.metadata._continue)
    assert [n.metadata.name for n in second.items] == ["c", "default"]  # the list as of page one


def test_it_answers_410_for_an_exact_list_of_a_compacted_version(kube, core):
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespace({"metadata": {"name": "later"}})
    exact = core.list_namespace(resource_version=rv, resource_version_match="Exact")
    assert "later" not in [n.metadata.name for n in exact.items]
    kube.compact()
    gone = error_of(lambda: core.list_namespace(resource_version=rv, resource_version_match="Exact"))
    assert (gone.status, json.loads(gone.body)["reason"]) == (410, "Expired")
    token = core.list_namespace(limit=1).metadata._continue
    core.create_namespace({"metadata": {"name": "more"}})
    kube.compact()
    stale = error_of(lambda: core.list_namespace(limit=1, _continue=token))
    assert stale.status == 410
    assert json.loads(stale.body)["metadata"]["continue"]  # a fresh token, as etcd gives


def test_it_refuses_unsupported_field_selectors(kube, apps, core):
    error = error_of(lambda: apps.list_namespaced_deployment(NS, field_selector="spec.replicas=2"))
    assert (error.status, json.loads(error.body)["message"]) == (400, "field label not supported: spec.replicas")
    assert core.list_namespaced_pod(NS, field_selector="status.phase=Running").items == []


# ---------------------------------------------------------------------------- pods and events
def test_it_keeps_a_deleted_pod_terminating_until_the_kubelet_removes_it():
    with start(ready_after=0.2, terminate_after=0.5) as kube, api_client(kube.url) as api:
        core = client.CoreV1Api(api)
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=1)
        kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
        name = core.list_namespaced_pod(NS).items[0].metadata.name
        deleted = core.delete_namespaced_pod(name, NS)
        assert deleted.metadata.deletion_timestamp is not None
        assert core.read_namespaced_pod(name, NS).metadata.deletion_grace_period_seconds == 30
        kube.wait_for(lambda c: c.find("pods", NS, name) is None, 10)
        assert error_of(lambda: core.read_namespaced_pod(name, NS)).status == 404
        killing = [e for e in core.list_namespaced_event(NS).items if e.reason == "Killing"]
        assert killing[0].message == "Stopping container web"


def test_it_reads_container_logs(kube, core):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=1)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    name = core.list_namespaced_pod(NS).items[0].metadata.name
    text = core.read_namespaced_pod_log(name, NS)
    assert text.splitlines() == [
        "Starting web (nginx:1.0): sandbox stand-in, instance 0",
        "Listening on 0.0.0.0:8080",
        "Ready: serving requests",
    ]
    previous = error_of(lambda: core.read_namespaced_pod_log(name, NS, previous=True))
    assert previous.status == 400
    assert "previous terminated container" in json.loads(previous.body)["message"]


def test_it_counts_a_repeated_event_instead_of_adding_one():
    with start(ready_after=0.1, crash_backoff=0.2) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0-crash", replicas=1)

        def backoff(cluster):
            found = [e for e in cluster.raw("events", NS) if e["reason"] == "BackOff"]
            return len(found) == 1 and found[0]["count"] >= 3 and found[0]

        event = kube.wait_for(backoff, 20)
        assert event["type"] == "Warning"
        assert event["involvedObject"]["fieldPath"] == "spec.containers{web}"
        assert event["source"] == {"component": "kubelet", "host": "sandbox-node-1"}


def test_it_schedules_crash_restarts_with_the_kubelets_back_off():
    kubelet = Kubelet(cluster=None, events=None, ready_after=2.0, crash_backoff=10.0)
    starts = [i.start for i in kubelet.timeline("app:1-crash", 0.0, 3600.0).instances]
    gaps = [round(b - a - 2.0) for a, b in zip(starts, starts[1:], strict=False)]  # minus the 2 s each run lasts
    assert gaps[:7] == [0, 10, 20, 40, 80, 160, 300]  # the first restart is immediate; capped at 5 min
    assert set(gaps[7:]) == {300}


# ------------------------------------------------------------------------- reviews and OpenAPI
def test_it_answers_access_reviews_and_self_reviews_for_its_token():
    with start(token="s3cret") as kube, api_client(kube.url, "s3cret") as api:
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": "patch", "group": "apps", "resource": "deployments"}}}
        )
        assert review.status.allowed is True
        who = client.AuthenticationV1Api(api).create_self_subject_review({})
        assert who.status.user_info.username == "kubernetes-admin"
    with start(token="s3cret") as kube, api_client(kube.url, "wrong") as api:
        assert error_of(lambda: client.AuthenticationV1Api(api).create_self_subject_review({})).status == 401


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.headers, json.loads(answer.read())


def test_it_serves_openapi_documents_that_say_the_server_validates_fields(kube):
    _, index = get_json(f"{kube.url}/openapi/v3")
    assert set(index["paths"]) >= {"api/v1", "apis/apps/v1", "apis/authentication.k8s.io/v1"}
    headers, doc = get_json(kube.url + index["paths"]["apis/apps/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert {p["name"] for p in patch["parameters"]} >= {"fieldValidation", "fieldManager", "dryRun", "force"}
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]
    containers = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (containers["x-kubernetes-patch-merge-key"], containers["x-kubernetes-list-type"]) == ("name", "map")
    _, swagger = get_json(f"{kube.url}/openapi/v2")
    deployment = swagger["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    request = urllib.request.Request(
        f"{kube.url}/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/octet-stream"
        assert b"io.k8s.api.apps.v1.Deployment" in answer.read()


def test_it_refuses_unknown_fields_under_strict_validation_and_warns_otherwise(kube):
    config = body()
    config["spec"]["replicaz"] = 3
    data = json.dumps(config).encode()
    url = f"{kube.url}/apis/apps/v1/namespaces/{NS}/deployments"
    request = urllib.request.Request(
        f"{url}?fieldValidation=Strict", data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert 'strict decoding error: unknown field "spec.replicaz"' in json.loads(refused.value.read())["message"]
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Warning"] == '299 - "unknown field \\"spec.replicaz\\""'
        assert "replicaz" not in json.loads(answer.read())["spec"]


# ------------------------------------------------------------------------------------- idling
def test_it_does_no_work_while_nothing_changes(kube, apps):
    apps.create_namespaced_deployment(NS, body())
    quiet(kube)
    kube.wait_for(lambda c: kube.controllers.asleep, 5)
    passes, rv = kube.controllers.passes, kube.cluster.rv
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        kube.cluster.wait_fresh(rv + 1, deadline - time.monotonic())  # returns early on any write
    assert (kube.controllers.passes, kube.cluster.rv) == (passes, rv)


def test_it_follows_a_container_log_until_the_container_exits():
    with start(ready_after=0.3, crash_backoff=0.5) as kube, api_client(kube.url) as api:
        core = client.CoreV1Api(api)
        kube.create_deployment(NS, "web", "nginx:1.0-crash", replicas=1)

        def running(cluster):
            pods = cluster.raw("pods", NS)
            statuses = [s for p in pods for s in (p.get("status") or {}).get("containerStatuses") or []]
            return statuses and "running" in statuses[0]["state"] and pods[0]["metadata"]["name"]

        name = kube.wait_for(running, 10)
        stream = core.read_namespaced_pod_log(name, NS, follow=True, _preload_content=False)
        lines = b"".join(stream.stream()).decode().splitlines()
        assert lines[0].startswith("Starting web (nginx:1.0-crash): sandbox stand-in, instance ")
        assert lines[-1].startswith("fatal: the image tag ends in -crash, so web exits with status 1")
        assert len(lines) == 2  # one instance, from its start to its crash
