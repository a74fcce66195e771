"""Fidelity of the fake apiserver where the portal's integration tests found it lacking:
typed-client deserialisation, what stop() does to open connections, reads and watches from a
resourceVersion ahead of the store, and restarting the API server over the same objects."""

import http.client
import json
import threading
import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.kube import start
from tests.support import wait_until

from .conftest import api_client, modify
from .conftest import set_image as sandbox_set_image

NS = "default"


def set_image(kube, name: str, image: str) -> None:
    sandbox_set_image(kube, NS, name, image)


def set_replicas(kube, name: str, replicas: int) -> None:
    modify(kube, NS, name, lambda d: d["spec"].update(replicas=replicas))


def test_it_serves_objects_the_typed_client_deserialises(kube, apps, core):
    # A ReplicaSet fresh from create has no controller status yet; its replicas is still sent.
    rs = apps.create_namespaced_replica_set(
        NS,
        {
            "metadata": {"name": "bare"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "bare"}},
                "template": {
                    "metadata": {"labels": {"app": "bare"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
                },
            },
            "status": {"replicas": 7, "readyReplicas": 7},  # ignored on create, as by the apiserver
        },
    )
    assert rs.status.replicas == 0
    assert rs.status.ready_replicas is None
    pod = core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    assert (pod.status.phase, pod.status.qos_class) == ("Pending", "BestEffort")

    # Every version of every object of a rollout and a scale to 0, through a typed watch...
    listed = apps.list_namespaced_replica_set(NS)
    seen, errors = [], []

    def follow():
        try:
            for event in watch.Watch().stream(
                apps.list_namespaced_replica_set,
                NS,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=3,
            ):
                seen.append(event["object"])
        except Exception as exc:  # noqa: BLE001 - any failure to build a typed model is the finding
            errors.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=3)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
    set_image(kube, "web", "nginx:1.1")
    # ... and typed lists mid-rollout ...
    kube.wait_for(lambda c: len(c.raw("replicasets", NS)) == 3, timeout=5)
    for _ in range(5):
        assert apps.list_namespaced_deployment(NS).items
        assert len(apps.list_namespaced_replica_set(NS).items) == 3
        core.list_namespaced_pod(NS)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
    set_replicas(kube, "web", 0)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web") and not c.raw("pods", NS)[1:], timeout=5)
    # ... and after the scale to 0.
    web = apps.read_namespaced_deployment("web", NS)
    assert web.status.replicas is None
    assert web.status.observed_generation == web.metadata.generation
    assert {rs.status.replicas for rs in apps.list_namespaced_replica_set(NS).items} == {0}
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["p"]
    thread.join(timeout=10)
    assert not errors
    assert len({rs.metadata.name for rs in seen}) == 2  # web's old and new ReplicaSets


def test_it_drops_every_connection_on_stop():
    kube = start(ready_after=0.1)
    kube.create_deployment(NS, "web", "nginx:1.0")
    # Settled first, so that nothing but the stop can end the watch below.
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=30)
    # A kept-alive connection...
    conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=10)
    conn.request("GET", "/version")
    assert conn.getresponse().read()
    # ... and a watch blocked in a read.
    ended = threading.Event()
    outcome = []

    def block_in_watch():
        with api_client(kube.url) as api:
            apps = client.AppsV1Api(api)
            rv = apps.list_namespaced_deployment(NS).metadata.resource_version
            stream = apps.list_namespaced_deployment(
                NS, watch=True, resource_version=rv, _preload_content=False, _request_timeout=30
            )
            outcome.append("open")
            try:
                outcome.append(stream.read())
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                outcome.append(exc)
            ended.set()

    thread = threading.Thread(target=block_in_watch, daemon=True)
    thread.start()
    wait_until(lambda: outcome)
    time.sleep(0.1)  # the watch is being served
    kube.stop()
    assert ended.wait(timeout=2)  # not the 30 s read timeout
    assert outcome[1] == b"" or isinstance(outcome[1], Exception)  # no final chunk, no more data
    conn.request("GET", "/version")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.getresponse()


def test_it_answers_reads_from_a_too_large_resource_version_with_504():
    old = start(ready_after=0.1)
    old.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    old.wait_for(lambda c: old.rollout_complete(NS, "web"), timeout=5)
    old_rv = old.cluster.rv
    old.stop()
    kube = start(ready_after=0.1, too_large_wait=0.3, seed={"deployments": [{"name": "web", "image": "nginx:1.0"}]})
    try:
        kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
        assert kube.cluster.rv < old_rv
        with api_client(kube.url) as api:
            apps = client.AppsV1Api(api)
            with pytest.raises(ApiException) as raised:
                apps.list_namespaced_deployment(NS, resource_version=str(old_rv), resource_version_match="NotOlderThan")
            status = json.loads(raised.value.body)
            assert raised.value.status == 504
            assert status["reason"] == "Timeout"
            assert status["message"] == f"Timeout: Too large resource version: {old_rv}, current: {kube.cluster.rv}"
            assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
            conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=5)
            conn.request("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/web?resourceVersion={old_rv}")
            assert conn.getresponse().status == 504  # a get, too

            # A version the store reaches while the read waits is served.
            wanted = kube.cluster.rv + 1
            timer = threading.Timer(0.05, set_replicas, (kube, "web", 2))
            timer.start()
            listed = apps.list_namespaced_deployment(NS, resource_version=str(wanted))
            assert int(listed.metadata.resource_version) >= wanted
            timer.join()
    finally:
        kube.stop()


def test_it_keeps_a_watch_from_a_too_large_resource_version_silent_until_the_store_passes_it(kube, apps):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=1)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
    ahead = kube.cluster.rv + 3
    events = []

    def follow():
        for line in apps.list_namespaced_deployment(
            NS,
            watch=True,
            resource_version=str(ahead),
            allow_watch_bookmarks=True,
            timeout_seconds=2,
            _preload_content=False,
        ).stream():
            events.extend(json.loads(chunk) for chunk in line.splitlines() if chunk)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)  # some bookmark intervals (0.2 s) pass without any event
    assert events == []
    set_image(kube, "web", "nginx:1.1")
    thread.join(timeout=5)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs
    assert all(rv > ahead for rv in rvs)
    expected = [e.rv for e in kube.cluster.history if e.resource == "deployments" and e.rv > ahead]
    assert [rv for e, rv in zip(events, rvs, strict=True) if e["type"] != "BOOKMARK"] == expected


def test_it_restarts_the_api_server_with_the_same_objects_and_history():
    kube = start(ready_after=0.3)
    try:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=4)
        kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
        before = kube.deployment(NS, "web")["metadata"]
        with api_client(kube.url) as api:
            apps = client.AppsV1Api(api)
            listed = apps.list_namespaced_replica_set(NS)
        seen, drops = [], []

        def follow():  # a reflector's watch loop, typed, with the official client
            rv = listed.metadata.resource_version
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not kube.cluster.closed:
                try:
                    with api_client(kube.url) as api:
                        for event in watch.Watch().stream(
                            client.AppsV1Api(api).list_namespaced_replica_set,
                            NS,
                            resource_version=rv,
                            timeout_seconds=5,
                            _request_timeout=(1, 10),
                        ):
                            rv = event["object"].metadata.resource_version
                            seen.append(int(rv))
                except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:  # the server went away
                    drops.append(exc)
                    time.sleep(0.05)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        set_image(kube, "web", "nginx:1.1")
        kube.wait_for(lambda c: len(c.raw("replicasets", NS)) == 2, timeout=5)
        wait_until(lambda: seen)
        kube.restart(pause=0.5)  # the rollout goes on while the API server is down
        assert drops  # the open watch was dropped
        kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=10)
        expected = [
            e.rv
            for e in kube.cluster.history
            if e.resource == "replicasets" and e.rv > int(listed.metadata.resource_version)
        ]
        wait_until(lambda: seen[-1:] == expected[-1:])
        assert seen == expected  # no gap, no duplicate
        after = kube.deployment(NS, "web")["metadata"]
        assert (after["uid"], after["generation"]) == (before["uid"], before["generation"] + 1)
        assert int(after["resourceVersion"]) > int(before["resourceVersion"])
    finally:
        kube.stop()
    thread.join(timeout=5)


def test_it_freezes_the_controllers_while_the_api_server_is_paused(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
    kube.pause_http(freeze_controllers=True)
    with pytest.raises((ConnectionRefusedError, TimeoutError)):
        http.client.HTTPConnection("127.0.0.1", kube.port, timeout=2).request("GET", "/version")
    set_replicas(kube, "web", 3)
    rv = kube.cluster.rv
    time.sleep(0.3)
    assert kube.cluster.rv == rv  # nothing reconciles while paused
    kube.pause_http(0.05)  # comes back by itself
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), timeout=5)
    wait_until(lambda: kube.http_up)
    conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=2)
    conn.request("GET", "/version")
    assert conn.getresponse().status == 200
