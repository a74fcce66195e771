"""The real kubectl looking around the sandbox cluster: permissions, logs, exec, events, describe,
paging, and the answers the API server gives to bad names and unsupported field selectors."""

import json

import pytest

from sandbox.kube import start
from tests.sandbox.conftest import Kubectl
from tests.support.tools import kubectl_version, require_kubectl

NS = "default"


@pytest.fixture
def slow_kube():
    """Pods Ready after 0.3 s, crash loops backing off from 0.5 s, Terminating for 1 s."""
    sandbox = start(ready_after=0.3, crash_backoff=0.5, terminate_after=1.0)
    yield sandbox
    sandbox.stop()


def web(kube, kubectl, image="nginx:1.0", replicas=1):
    kubectl("create", "deployment", "web", f"--image={image}", f"--replicas={replicas}")


def pods(kube) -> list[dict]:
    return [p for p in kube.cluster.raw("pods", NS) if not p["metadata"].get("deletionTimestamp")]


def test_it_answers_auth_can_i_yes(kube, kubectl):
    assert kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "delete", "pods", "-n", "kube-system").stdout.strip() == "yes"
    listing = kubectl("auth", "can-i", "--list").stdout
    assert "*.*" in listing


def test_it_answers_auth_whoami_with_the_sandbox_admin(kube, kubectl):
    if kubectl_version(kubectl.program) >= (1, 28):  # `auth whoami` is GA in 1.28
        rows = dict(line.split(None, 1) for line in kubectl("auth", "whoami").stdout.splitlines()[1:])
        assert rows["Username"].strip() == "kubernetes-admin"
        assert "system:authenticated" in rows["Groups"]
    # What `auth whoami` sends, through any kubectl (Debian's is 1.20).
    review = "apiVersion: authentication.k8s.io/v1\nkind: SelfSubjectReview\nmetadata: {name: me}\n"
    answer = json.loads(kubectl("create", "-f", "-", "-o", "json", stdin=review).stdout)
    assert answer["status"]["userInfo"]["username"] == "kubernetes-admin"


def test_it_shows_container_logs_and_refuses_exec_and_port_forward(kube, kubectl):
    web(kube, kubectl)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    name = pods(kube)[0]["metadata"]["name"]
    lines = kubectl("logs", name).stdout.splitlines()
    assert lines == [
        "Starting nginx (nginx:1.0): sandbox stand-in, instance 0",
        "Listening on 0.0.0.0:8080",
        "Ready: serving requests",
    ]
    stamped = kubectl("logs", "deployment/web", "--timestamps", "--tail=1").stdout.strip()
    assert stamped.endswith("Z Ready: serving requests")
    exec_ = kubectl("exec", name, "--", "ls", check=False)
    assert exec_.returncode == 1
    assert "Error from server (BadRequest): the sandbox cluster cannot run commands in pod " + name in exec_.stderr
    forward = kubectl("port-forward", name, "18080:8080", check=False, timeout=30)
    assert forward.returncode == 1
    assert f"the sandbox cluster cannot forward ports to pod {name}" in forward.stderr


def test_it_shows_the_crash_of_a_crashing_container_in_its_logs(slow_kube, tmp_path):
    kubectl = Kubectl(slow_kube.url, tmp_path, require_kubectl())
    web(slow_kube, kubectl, image="nginx:1.0-crash")

    def crashed_twice(cluster):
        statuses = [s for p in pods(slow_kube) for s in p["status"].get("containerStatuses") or []]
        return statuses and statuses[0]["restartCount"] >= 1 and "terminated" in statuses[0]["lastState"]

    slow_kube.wait_for(crashed_twice, 20)
    name = pods(slow_kube)[0]["metadata"]["name"]
    previous = kubectl("logs", name, "--previous").stdout.splitlines()
    assert previous[0] == "Starting nginx (nginx:1.0-crash): sandbox stand-in, instance 0"
    assert previous[-1].startswith("fatal: the image tag ends in -crash, so nginx exits with status 1")


def test_it_shows_warning_events_for_a_crash_loop_and_an_image_pull(slow_kube, tmp_path):
    kubectl = Kubectl(slow_kube.url, tmp_path, require_kubectl())
    web(slow_kube, kubectl, image="nginx:1.0-crash")
    kubectl("create", "deployment", "api", "--image=api:2.0-missing")

    def warned(cluster):
        reasons = {(e["reason"], e["message"][:24]) for e in cluster.raw("events", NS) if e["type"] == "Warning"}
        return ("BackOff", "Back-off restarting fail") in reasons and ("Failed", "Error: ImagePullBackOff") in reasons

    slow_kube.wait_for(warned, 20)
    crashing = next(p for p in pods(slow_kube) if p["metadata"]["name"].startswith("web-"))["metadata"]["name"]
    described = kubectl("describe", "pod", crashing).stdout
    assert "CrashLoopBackOff" in described
    warning = next(line for line in described.splitlines() if line.split()[:2] == ["Warning", "BackOff"])
    assert "Back-off restarting failed container nginx in pod " + crashing in warning
    events = kubectl("get", "events", "--field-selector", "type=Warning", "-o", "json").stdout
    warnings = json.loads(events)["items"]
    pulling = [e for e in warnings if e["involvedObject"]["name"].startswith("api-")]
    assert {e["message"] for e in pulling} >= {"Error: ErrImagePull", "Error: ImagePullBackOff"}
    assert any(e["message"].startswith('Failed to pull image "api:2.0-missing"') for e in pulling)


def test_it_lists_events_with_kubectl_events(slow_kube, tmp_path):
    kubectl = Kubectl(slow_kube.url, tmp_path, require_kubectl())
    web(slow_kube, kubectl, image="nginx:1.0-crash")
    slow_kube.wait_for(lambda c: any(e["reason"] == "BackOff" for e in c.raw("events", NS)), 20)
    if kubectl_version(kubectl.program) >= (1, 28):  # `kubectl events` is GA in 1.28
        listed = kubectl("events", "--types=Warning").stdout
    else:
        listed = kubectl("get", "events", "--field-selector", "type=Warning").stdout
    assert "BackOff" in listed
    assert "Back-off restarting failed container nginx" in listed


def test_it_backs_off_crash_restarts_like_the_kubelet(slow_kube, tmp_path):
    kubectl = Kubectl(slow_kube.url, tmp_path, require_kubectl())
    web(slow_kube, kubectl, image="nginx:1.0-crash")

    def restarts(n):
        def check(cluster):
            statuses = [s for p in pods(slow_kube) for s in p["status"].get("containerStatuses") or []]
            return statuses and statuses[0]["restartCount"] >= n and statuses[0]

        return check

    status = slow_kube.wait_for(restarts(3), 30)
    waiting = slow_kube.wait_for(
        lambda c: (s := restarts(3)(c)) and (s["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff" and s,
        30,
    )
    # Back-off after the 2nd, 3rd … crash: 0.5 s, 1 s, 2 s (the kubelet's 10 s, 20 s, 40 s, scaled).
    assert "back-off 1s restarting failed container=nginx" in waiting["state"]["waiting"]["message"] or (
        "back-off 2s restarting failed container=nginx" in waiting["state"]["waiting"]["message"]
    )
    assert status["restartCount"] >= 3


def test_it_keeps_deleted_pods_terminating_before_they_go(slow_kube, tmp_path):
    kubectl = Kubectl(slow_kube.url, tmp_path, require_kubectl())
    web(slow_kube, kubectl, replicas=1)
    slow_kube.wait_for(lambda c: slow_kube.rollout_complete(NS, "web"), 10)
    name = pods(slow_kube)[0]["metadata"]["name"]
    kubectl("delete", "pod", name, "--wait=false")
    assert "Terminating" in kubectl("get", "pod", name).stdout
    slow_kube.wait_for(lambda c: c.find("pods", NS, name) is None, 10)
    assert "NotFound" in kubectl("get", "pod", name, check=False).stderr


def test_it_refuses_bad_names_and_unsupported_field_selectors(kube, kubectl):
    bad = kubectl("create", "deployment", "Bad_Name", "--image=nginx:1", check=False)
    assert bad.returncode == 1
    assert 'Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123' in (
        bad.stderr
    )
    selector = kubectl("get", "pods", "--field-selector", "spec.foo=bar", check=False)
    assert selector.returncode == 1
    assert "Error from server (BadRequest)" in selector.stderr
    assert "field label not supported: spec.foo" in selector.stderr
    assert kubectl("get", "pods", "--field-selector", "status.phase=Running").returncode == 0


def test_it_pages_lists_for_kubectl_chunks(kube, kubectl):
    web(kube, kubectl, replicas=3)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    rows = kubectl("get", "pods", "--chunk-size=1", "-o", "name").stdout.split()
    assert len(rows) == 3
    pages = [r for r in kube.requests_log if "/pods?" in r["path"] and "limit=1" in r["path"]]
    assert len(pages) == 3
    assert sum("continue=" in r["path"] for r in pages) == 2


def test_it_drops_owner_references_of_orphaned_replica_sets(kube, kubectl):
    web(kube, kubectl)
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    kubectl("delete", "deployment", "web", "--cascade=orphan")
    replica_sets = kube.cluster.raw("replicasets", NS)
    assert len(replica_sets) == 1
    assert "ownerReferences" not in replica_sets[0]["metadata"]
    assert kubectl("get", "rs").stdout.count("web-") == 1
