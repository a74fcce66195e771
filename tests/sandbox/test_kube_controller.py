"""The deployment / ReplicaSet controllers and the kubelet of the fake cluster."""

import time

import pytest

from sandbox.kube import start
from sandbox.kube.controller import (
    ALPHANUMS,
    compute_hash,
    get_condition,
    resolve_fenceposts,
)

from .conftest import modify as sandbox_modify
from .conftest import set_image as sandbox_set_image

NS = "default"


def pods_of(cluster, name: str) -> list[dict]:
    return [
        p
        for p in cluster.raw("pods", NS)
        if p["metadata"].get("labels", {}).get("app") == name and not p["metadata"].get("deletionTimestamp")
    ]


def is_ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def modify(kube, name: str, change) -> None:
    sandbox_modify(kube, NS, name, change)


def set_image(kube, name: str, image: str) -> None:
    sandbox_set_image(kube, NS, name, image)


def wait_complete(kube, name: str, timeout: float = 10) -> None:
    kube.wait_for(lambda c: kube.rollout_complete(NS, name), timeout)


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"),
    [
        (1, None, None),
        (3, None, None),
        (4, None, None),
        (10, None, None),
        (4, 0, 1),
        (10, 0, 1),
        (3, 2, 0),
        (10, 2, 0),
        (4, "50%", "50%"),
        (10, "50%", "50%"),
        (10, "100%", 0),
        (3, 0, 0),
    ],
)
def test_rolling_update_never_breaks_surge_or_availability(replicas, surge, unavailable):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {}}
    if surge is not None:
        strategy["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    with start(ready_after=0.05) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=replicas, strategy=strategy)
        wait_complete(kube, "web")
        d = kube.deployment(NS, "web")
        max_surge, max_unavailable = resolve_fenceposts(d)
        states = []

        def observe(cluster, event):
            pods = pods_of(cluster, "web")
            states.append((len(pods), sum(is_ready(p) for p in pods), event.type, event.resource))

        kube.observe(observe)
        set_image(kube, "web", "nginx:1.1")
        wait_complete(kube, "web")
        # Let the controllers settle so the observed history is complete.
        time.sleep(0.2)

    assert len(states) > replicas
    for count, available, *_ in states:
        assert count <= replicas + max_surge, states
        assert available >= replicas - max_unavailable, states
    with kube.cluster.lock:
        final = pods_of(kube.cluster, "web")
    assert len(final) == replicas
    assert {p["spec"]["containers"][0]["image"] for p in final} == {"nginx:1.1"}


@pytest.mark.parametrize("replicas", [4, 10])
def test_changing_the_template_mid_rollout_keeps_the_bounds(replicas):
    with start(ready_after=0.1) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=replicas)
        wait_complete(kube, "web")
        max_surge, max_unavailable = resolve_fenceposts(kube.deployment(NS, "web"))
        recorder = kube.observe_rollout(NS, "web")
        set_image(kube, "web", "nginx:1.1")
        kube.wait_for(lambda c: len(c.raw("replicasets", NS)) == 2 and len(recorder.states) > 8)
        set_image(kube, "web", "nginx:1.2")
        wait_complete(kube, "web")
        recorder.stop()
        assert len(kube.cluster.list("replicasets", NS)[0]) == 3
    assert all(s["pods"] <= replicas + max_surge for s in recorder.states)
    assert all(s["ready"] >= replicas - max_unavailable for s in recorder.states)
    assert max(len([v for v in s["replicasets"].values() if v[0]]) for s in recorder.states) >= 2


def test_fenceposts_round_like_kubernetes():
    def fence(replicas, surge="25%", unavailable="25%"):
        d = {
            "spec": {
                "replicas": replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
                },
            }
        }
        return resolve_fenceposts(d)

    assert [fence(n) for n in (1, 3, 4, 10)] == [(1, 0), (1, 0), (1, 1), (3, 2)]
    assert fence(5, 0, 0) == (0, 1)
    assert fence(5, "30%", "30%") == (2, 1)


def test_hash_is_deterministic_and_uses_the_safe_alphabet():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    assert compute_hash(template, None) == compute_hash(template, None)
    assert compute_hash(template, None) != compute_hash(template, 1)
    assert set(compute_hash(template, None)) <= set(ALPHANUMS)


def test_new_replica_set_bookkeeping(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=4)
    wait_complete(kube, "web")
    set_image(kube, "web", "nginx:1.1")
    wait_complete(kube, "web")
    d = kube.deployment(NS, "web")
    rss, _ = kube.cluster.list("replicasets", NS)
    assert len(rss) == 2
    new = next(rs for rs in rss if rs["spec"]["replicas"] == 4)
    old = next(rs for rs in rss if rs is not new)
    pod_hash = new["metadata"]["labels"]["pod-template-hash"]
    assert new["metadata"]["name"] == f"web-{pod_hash}"
    assert new["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert new["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": d["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert new["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "2",
        "deployment.kubernetes.io/desired-replicas": "4",
        "deployment.kubernetes.io/max-replicas": "5",
    }
    assert old["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert old["spec"]["replicas"] == 0
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert d["metadata"]["generation"] == 2
    assert d["status"]["observedGeneration"] == 2
    assert new["status"] == {
        "replicas": 4,
        "fullyLabeledReplicas": 4,
        "readyReplicas": 4,
        "availableReplicas": 4,
        "observedGeneration": new["metadata"]["generation"],
    }
    progressing = get_condition(d["status"], "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert progressing["message"] == f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.'
    available = get_condition(d["status"], "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    pods = pods_of(kube.cluster, "web")  # the old ones may still be Terminating
    assert all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in pods)
    assert all(len(p["metadata"]["name"].rsplit("-", 1)[1]) == 5 for p in pods)


def test_scaling_events_are_recorded(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    wait_complete(kube, "web")
    set_image(kube, "web", "nginx:1.1")
    wait_complete(kube, "web")
    events, _ = kube.cluster.list("events", NS, field_selector="involvedObject.kind=Deployment")
    messages = [e["message"] for e in events]
    rss = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["metadata"]["name"]
        for rs in kube.cluster.list("replicasets", NS)[0]
    }
    assert f"Scaled up replica set {rss['1']} from 0 to 2" in messages
    assert f"Scaled up replica set {rss['2']} from 0 to 1" in messages
    assert f"Scaled down replica set {rss['1']} from 2 to 1" in messages
    assert all(e["reason"] == "ScalingReplicaSet" for e in events)
    assert all(e["source"] == {"component": "deployment-controller"} for e in events)


def test_rollback_to_an_old_template_reuses_its_replica_set(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    wait_complete(kube, "web")
    set_image(kube, "web", "nginx:1.1")
    wait_complete(kube, "web")
    set_image(kube, "web", "nginx:1.0")
    wait_complete(kube, "web")
    rss, _ = kube.cluster.list("replicasets", NS)
    assert len(rss) == 2
    revived = next(rs for rs in rss if rs["spec"]["replicas"] == 2)
    assert revived["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert revived["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"


def test_proportional_scaling_during_a_rollout():
    with start(ready_after=0.5) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=10)
        wait_complete(kube, "web")
        set_image(kube, "web", "nginx:1.1-missing")  # the rollout gets stuck half-way
        kube.wait_for(lambda c: sum(rs["spec"]["replicas"] for rs in c.raw("replicasets", NS)) == 13, 5)
        modify(kube, "web", lambda d: d["spec"].update(replicas=20))

        def scaled(cluster):
            sizes = sorted(rs["spec"]["replicas"] for rs in cluster.raw("replicasets", NS))
            return sizes if sum(sizes) == 20 + 5 else None

        sizes = kube.wait_for(scaled, 5)
    # 8 old + 5 new (max-replicas 13) → round(8·25/13)=15 old, 5·25/13 → the 5 left → 10 new.
    assert sizes == [10, 15]


def test_recreate_strategy_kills_old_pods_first():
    with start(ready_after=0.05) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=3, strategy={"type": "Recreate"})
        wait_complete(kube, "web")
        images_seen = []
        kube.observe(lambda c, e: images_seen.append({p["spec"]["containers"][0]["image"] for p in pods_of(c, "web")}))
        set_image(kube, "web", "nginx:1.1")
        wait_complete(kube, "web")
    assert {"nginx:1.0", "nginx:1.1"} not in images_seen
    assert set() in images_seen
    assert kube.deployment(NS, "web")["spec"]["strategy"] == {"type": "Recreate"}


def test_progress_deadline_exceeded_for_crashing_pods():
    with start(ready_after=0.1) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=2, progressDeadlineSeconds=1)
        wait_complete(kube, "web")
        set_image(kube, "web", "nginx:1.1-crash")

        def timed_out(cluster):
            d = cluster.find("deployments", NS, "web")
            cond = get_condition(d.get("status") or {}, "Progressing")
            return cond if cond and cond["reason"] == "ProgressDeadlineExceeded" else None

        cond = kube.wait_for(timed_out, 6)
        assert cond["status"] == "False"
        assert cond["message"].endswith("has timed out progressing.")

        def crash_status(cluster):
            for pod in pods_of(cluster, "web"):
                status = pod["status"].get("containerStatuses", [{}])[0]
                waiting = status.get("state", {}).get("waiting") or {}
                if status.get("image", "").endswith("-crash") and status["restartCount"] >= 2 and waiting:
                    return status

        status = kube.wait_for(crash_status, 10)
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert not status["ready"]


def test_missing_image_never_becomes_ready():
    with start(ready_after=0.1) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0-missing", replicas=1)

        def backoff(cluster):
            pods = pods_of(cluster, "web")
            statuses = pods and pods[0]["status"].get("containerStatuses")
            return statuses and statuses[0]["state"].get("waiting", {}).get("reason")

        kube.wait_for(lambda c: backoff(c) == "ErrImagePull", 3)
        kube.wait_for(lambda c: backoff(c) == "ImagePullBackOff", 3)
        pod = kube.cluster.list("pods", NS)[0][0]
        assert pod["status"]["phase"] == "Pending"
        assert not is_ready(pod)


def test_pod_status_like_a_kubelet(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=1)
    wait_complete(kube, "web")
    pod = kube.cluster.list("pods", NS)[0][0]
    status = pod["status"]
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("10.")
    assert status["hostIP"]
    assert pod["spec"]["nodeName"] == "sandbox-node-1"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert {k: types[k] for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready")} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    container = status["containerStatuses"][0]
    assert container["name"] == "web"
    assert container["image"] == "nginx:1.0"
    assert container["ready"] is True
    assert container["restartCount"] == 0
    assert "running" in container["state"]


def test_min_ready_seconds_delays_availability():
    with start(ready_after=0.05) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=1, minReadySeconds=1)
        kube.wait_for(lambda c: c.find("deployments", NS, "web")["status"].get("readyReplicas"), 3)
        started = time.monotonic()
        assert not kube.deployment(NS, "web")["status"].get("availableReplicas")
        wait_complete(kube, "web", 5)
        assert time.monotonic() - started >= 0.8


def test_pause_and_resume(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    wait_complete(kube, "web")

    def pause_with_a_new_image(d):
        d["spec"]["paused"] = True
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.1"

    modify(kube, "web", pause_with_a_new_image)

    def progressing_reason(cluster):
        cond = get_condition(cluster.find("deployments", NS, "web")["status"], "Progressing")
        return cond["reason"], cond["status"]

    kube.wait_for(lambda c: progressing_reason(c) == ("DeploymentPaused", "Unknown"), 3)
    time.sleep(0.3)
    assert len(kube.cluster.list("replicasets", NS)[0]) == 1  # no rollout while paused
    modify(kube, "web", lambda d: d["spec"].update(paused=False))
    wait_complete(kube, "web")
    assert len(kube.cluster.list("replicasets", NS)[0]) == 2


def test_revision_history_limit_cleans_old_replica_sets(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=1, revisionHistoryLimit=1)
    for version in ("1.1", "1.2", "1.3"):
        wait_complete(kube, "web")
        set_image(kube, "web", f"nginx:{version}")
    wait_complete(kube, "web")
    kube.wait_for(lambda c: len(c.raw("replicasets", NS)) == 2, 3)
    revisions = sorted(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in kube.cluster.list("replicasets", NS)[0]
    )
    assert revisions == ["3", "4"]


def test_scale_down_to_zero_and_up(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=3)
    wait_complete(kube, "web")
    for replicas in (0, 5):
        modify(kube, "web", lambda d, n=replicas: d["spec"].update(replicas=n))
        wait_complete(kube, "web")
        kube.wait_for(lambda c, n=replicas: len(pods_of(c, "web")) == n, 3)


def test_deleting_a_deployment_cascades(kube):
    kube.create_deployment(NS, "web", "nginx:1.0", replicas=2)
    wait_complete(kube, "web")
    kube.cluster.delete("deployments", NS, "web")
    assert kube.cluster.list("replicasets", NS)[0] == []
    pods = kube.cluster.list("pods", NS)[0]
    assert len(pods) == 2
    assert all(p["metadata"]["deletionTimestamp"] for p in pods)  # Terminating
    kube.wait_for(lambda c: not c.raw("pods", NS), 10)


def test_observe_rollout_records_every_step():
    with start(ready_after=0.05) as kube:
        kube.create_deployment(NS, "web", "nginx:1.0", replicas=4)
        wait_complete(kube, "web")
        recorder = kube.observe_rollout(NS, "web")
        set_image(kube, "web", "nginx:1.1")
        wait_complete(kube, "web")
        recorder.stop()
    states = recorder.states
    assert all(3 <= s["ready"] and s["pods"] <= 5 for s in states)  # 25%/25% of 4 → (1, 1)
    rvs = [s["rv"] for s in states]
    assert rvs == sorted(rvs)
    sizes = [sorted(s["replicasets"].values()) for s in states]
    assert sizes[0] == [(4, 4)]
    assert sizes[-1] == [(0, 0), (4, 4)]
