"""The real kubectl 1.32 (through the gcloud dispatcher) against the fake cluster."""

import json

NS = "default"


def create_web(kube, kubectl, replicas=4, image="nginx:1.0"):
    result = kubectl("create", "deployment", "web", f"--image={image}", f"--replicas={replicas}")
    assert result.stdout.strip() == "deployment.apps/web created"
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)


def test_create_get_and_wide_output(kube, kubectl):
    create_web(kube, kubectl)
    out = kubectl("get", "deploy,rs,pods").stdout
    assert "deployment.apps/web   4/4     4            4" in out
    assert "NAME DESIRED CURRENT READY AGE" in " ".join(out.split())
    assert out.count("Running") == 4
    wide = kubectl("get", "deploy", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert wide[1].split()[5:] == ["nginx", "nginx:1.0", "app=web"]
    pods = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert pods[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert "sandbox-node-1" in pods[1]
    as_json = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert as_json["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.0"
    assert as_json["status"]["availableReplicas"] == 4
    listed = json.loads(kubectl("get", "deploy", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    # Table requests were answered with Tables, not the client-side NAME/AGE fallback.
    assert any("as=Table" in r["accept"] for r in kube.requests_log)


def test_set_image_and_rollout_status(kube, kubectl):
    create_web(kube, kubectl)
    assert (
        kubectl("set", "image", "deployment/web", "nginx=nginx:1.1").stdout.strip()
        == "deployment.apps/web image updated"
    )
    status = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in status.stdout
    pods, _ = kube.cluster.list("pods", NS)
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert {p["spec"]["containers"][0]["image"] for p in running} == {"nginx:1.1"}
    smp = [r for r in kube.requests_log if r["method"] == "PATCH"]
    assert smp[-1]["content_type"] == "application/strategic-merge-patch+json"


def test_rollout_status_reports_the_progress_deadline(kube, kubectl):
    create_web(kube, kubectl, replicas=2)
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"progressDeadlineSeconds":1}}')
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.1-crash")
    result = kubectl("rollout", "status", "deployment/web", "--timeout=30s", check=False)
    assert result.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in result.stderr
    out = kubectl("get", "pods").stdout
    assert "CrashLoopBackOff" in out or "Running" in out


def test_rollout_undo_and_history(kube, kubectl):
    create_web(kube, kubectl, replicas=2)
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.1")
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    history = kubectl("rollout", "history", "deployment/web").stdout.split()
    assert history[history.index("CHANGE-CAUSE") + 1 :] == ["1", "<none>", "2", "<none>"]

    assert kubectl("rollout", "undo", "deployment/web").stdout.strip() == ("deployment.apps/web rolled back")
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert kube.deployment(NS, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == ("nginx:1.0")
    history = kubectl("rollout", "history", "deployment/web").stdout.split()
    # Revision 1 became revision 3, like the real controller does.
    assert history[history.index("CHANGE-CAUSE") + 1 :] == ["2", "<none>", "3", "<none>"]
    result = kubectl("rollout", "undo", "deployment/web", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in result.stdout
    patches = [r for r in kube.requests_log if r["method"] == "PATCH"]
    assert patches[-1]["content_type"] == "application/json-patch+json"


def test_pause_resume_scale_patch(kube, kubectl):
    create_web(kube, kubectl, replicas=2)
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.1")
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert kubectl("rollout", "pause", "deployment/web").stdout.strip() == ("deployment.apps/web paused")
    result = kubectl("rollout", "undo", "deployment/web", check=False)
    assert "you cannot rollback a paused deployment" in result.stderr
    assert kubectl("rollout", "resume", "deployment/web").stdout.strip() == ("deployment.apps/web resumed")
    assert kubectl("scale", "deployment/web", "--replicas=3").stdout.strip() == ("deployment.apps/web scaled")
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web") and len(c.raw("pods", NS)) == 3, 5)
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"replicas":4}}')
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"metadata":{"labels":{"t":"m"}}}')
    kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/annotations/team","value":"x"}]',
    )
    d = kube.deployment(NS, "web")
    assert d["spec"]["replicas"] == 4
    assert d["metadata"]["labels"]["t"] == "m"
    assert d["metadata"]["annotations"]["team"] == "x"


def test_all_namespaces_errors_and_delete(kube, kubectl):
    kubectl("create", "namespace", "prod")
    kubectl("-n", "prod", "create", "deployment", "api", "--image=api:1")
    create_web(kube, kubectl, replicas=1)
    rows = [line.split()[:2] for line in kubectl("get", "deploy", "-A").stdout.splitlines()]
    assert rows == [["NAMESPACE", "NAME"], ["default", "web"], ["prod", "api"]]
    missing = kubectl("get", "deploy", "nope", check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in missing.stderr
    assert kubectl("delete", "deployment", "web").stdout.strip() == 'deployment.apps "web" deleted'
    kube.wait_for(lambda c: not c.raw("pods", NS), 10)  # after Terminating
    assert "No resources found" in kubectl("get", "rs").stderr
