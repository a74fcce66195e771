"""The real kubectl's declarative workflow against the sandbox cluster, with validation on:
apply, diff, server-side apply with field ownership, and server-side dry runs of every write."""

import json
from pathlib import Path

import pytest
import yaml

from sandbox.kube import start
from tests.sandbox.conftest import Kubectl
from tests.support.tools import require_kubectl

NS = "default"
MANIFEST = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.0",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "MODE", "value": "shop"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    }
                ]
            },
        },
    },
}


@pytest.fixture
def state_kube(tmp_path):
    """A cluster that keeps a state file, so a test can compare its bytes."""
    sandbox = start(ready_after=0.1, state=tmp_path / "cluster.json")
    yield sandbox
    sandbox.stop()


def write(path: Path, manifest: dict) -> str:
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def image_of(kube) -> str:
    return kube.deployment(NS, "web")["spec"]["template"]["spec"]["containers"][0]["image"]


def settled(kube) -> bool:
    """Rolled out, every pod Ready, none Terminating: nothing will change by itself."""
    pods = kube.cluster.raw("pods", NS)
    return (
        kube.rollout_complete(NS, "web")
        and all(not p["metadata"].get("deletionTimestamp") for p in pods)
        and all(c["ready"] for p in pods for c in p["status"].get("containerStatuses") or [{"ready": False}])
    )


def test_it_applies_an_exported_manifest_diffs_nothing_and_rolls_out_a_change(kube, kubectl, tmp_path):
    kubectl("create", "deployment", "web", "--image=nginx:1.0", "--replicas=2")
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    exported = yaml.safe_load(kubectl("get", "deploy", "web", "-o", "yaml").stdout)
    # kubectl before 1.21 prints managedFields; people drop them from manifests they keep.
    exported["metadata"].pop("managedFields", None)
    manifest = write(tmp_path / "web.yaml", exported)

    applied = kubectl("apply", "-f", manifest)  # validation on: kubectl reads the OpenAPI documents
    assert applied.stdout.strip() == "deployment.apps/web configured"
    assert kubectl("diff", "-f", manifest).returncode == 0  # nothing would change

    current = yaml.safe_load(kubectl("get", "deploy", "web", "-o", "yaml").stdout)
    current["metadata"].pop("managedFields", None)
    current["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.1"
    changed = write(tmp_path / "web-1.1.yaml", current)
    diff = kubectl("diff", "-f", changed, check=False)
    assert diff.returncode == 1
    assert "-      - image: nginx:1.0" in diff.stdout
    assert "+      - image: nginx:1.1" in diff.stdout
    assert image_of(kube) == "nginx:1.0"  # diff is a dry run
    assert kubectl("apply", "-f", changed).stdout.strip() == "deployment.apps/web configured"
    status = kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in status.stdout
    assert image_of(kube) == "nginx:1.1"
    assert kube.deployment(NS, "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def test_it_creates_from_a_manifest_with_ports_env_and_resources(kube, kubectl, tmp_path):
    manifest = write(tmp_path / "web.yaml", MANIFEST)
    assert kubectl("apply", "-f", manifest).stdout.strip() == "deployment.apps/web created"
    assert kubectl("diff", "-f", manifest).returncode == 0
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    container = kube.deployment(NS, "web")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["resources"] == {"limits": {"cpu": "500m", "memory": "64Mi"}}
    replaced = kubectl("replace", "-f", manifest)
    assert replaced.stdout.strip() == "deployment.apps/web replaced"


def test_it_refuses_unknown_fields_when_kubectl_validates(kube, kubectl, tmp_path):
    bad = json.loads(json.dumps(MANIFEST))
    bad["spec"]["replica"] = 3
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    manifest = write(tmp_path / "bad.yaml", bad)
    result = kubectl("apply", "-f", manifest, check=False)
    assert result.returncode == 1
    assert 'unknown field "spec.replica"' in result.stderr or 'unknown field "replica"' in result.stderr
    assert "imagePullPolice" in result.stderr
    assert kube.cluster.find("deployments", NS, "web") is None


def test_it_server_side_applies_reports_a_conflict_and_takes_over_with_force(kube, kubectl, tmp_path):
    kubectl("create", "deployment", "web", "--image=nginx:1.0", "--replicas=2")
    kube.wait_for(lambda c: kube.rollout_complete(NS, "web"), 10)
    ours = json.loads(json.dumps(MANIFEST))
    ours["metadata"] = {"name": "web"}
    ours["spec"]["template"]["spec"]["containers"] = [{"name": "nginx", "image": "nginx:1.2"}]
    manifest = write(tmp_path / "ssa.yaml", ours)

    clash = kubectl("apply", "--server-side", "--field-manager=ci", "-f", manifest, check=False)
    assert clash.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: ' in clash.stderr
    assert '.spec.template.spec.containers[name="nginx"].image' in clash.stderr
    assert "--force-conflicts" in clash.stderr
    assert image_of(kube) == "nginx:1.0"

    forced = kubectl("apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", manifest)
    assert forced.stdout.strip() == "deployment.apps/web serverside-applied"
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert image_of(kube) == "nginx:1.2"
    owners = {e["manager"]: e for e in kube.deployment(NS, "web")["metadata"]["managedFields"]}
    assert owners["ci"]["operation"] == "Apply"
    image_path = owners["ci"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert "f:image" in image_path
    # Applying the same configuration again is not a change at all.
    rv = kube.deployment(NS, "web")["metadata"]["resourceVersion"]
    kubectl("apply", "--server-side", "--field-manager=ci", "-f", manifest)
    assert kube.deployment(NS, "web")["metadata"]["resourceVersion"] == rv


def test_it_dry_runs_every_kind_of_write_without_changing_a_byte(state_kube, tmp_path):
    kubectl = Kubectl(state_kube.url, tmp_path, require_kubectl())
    manifest = write(tmp_path / "web.yaml", MANIFEST)
    kubectl("apply", "-f", manifest)
    state_kube.wait_for(lambda c: settled(state_kube), 20)
    pod = state_kube.cluster.raw("pods", NS)[0]["metadata"]["name"]
    changed = json.loads(json.dumps(MANIFEST))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    changed_file = write(tmp_path / "changed.yaml", changed)
    other = json.loads(json.dumps(MANIFEST))
    other["metadata"]["name"] = "other"
    other_file = write(tmp_path / "other.yaml", other)
    state_file = Path(state_kube.state_path)
    before = (state_kube.dump(), state_kube.cluster.rv, state_file.read_bytes())

    writes = [
        ("create", "deployment", "dry", "--image=nginx:1", "--dry-run=server"),
        ("create", "-f", other_file, "--dry-run=server"),
        ("apply", "-f", changed_file, "--dry-run=server"),
        ("apply", "--server-side", "-f", changed_file, "--dry-run=server", "--force-conflicts"),
        ("replace", "-f", changed_file, "--dry-run=server"),
        ("set", "image", "deployment/web", "nginx=nginx:9", "--dry-run=server"),
        ("scale", "deployment/web", "--replicas=7", "--dry-run=server"),
        ("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":5}}', "--dry-run=server"),
        ("label", "deployment", "web", "team=shop", "--dry-run=server"),
        ("annotate", "pod", pod, "note=x", "--dry-run=server"),
        ("delete", "pod", pod, "--dry-run=server"),
        ("delete", "deployment", "web", "--dry-run=server"),
        ("create", "namespace", "dry-ns", "--dry-run=server"),
    ]
    answers = [kubectl(*args).stdout for args in writes]
    assert sum("(server dry run)" in answer for answer in answers) >= 10  # kubectl says so for most
    assert kubectl("diff", "-f", changed_file, check=False).returncode == 1

    assert (state_kube.dump(), state_kube.cluster.rv, state_file.read_bytes()) == before
