"""The portal's own Kubernetes manifests (deploy/): every overlay rendered by the real
`kubectl kustomize` and checked object by object (kinds, probes, disruption budgets, security
contexts, lease RBAC, secrets as files), the probes run as the kubelet would run them, and each
overlay applied to the sandbox cluster — first as a server-side dry run that changes nothing,
then for real into a fresh namespace, where the sandbox's controller brings every Deployment of
the portal to Available.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from django.test import Client

from clusters.management.commands import watch_clusters
from portal.management.commands import cron
from tests.sandbox.conftest import Kubectl
from tests.support.tools import require_kubectl, require_tool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ("production", "istio", "longhorn")
PROCESSES = ("web", "worker", "cron", "watcher")
SECRET_MOUNT = "/run/secrets/pampam"


def kustomize(path: Path, tmp_path: Path | None = None, namespace: str | None = None) -> list[dict]:
    """Render `path` with kubectl's built-in kustomize; with `namespace`, through a wrapping
    kustomization that moves everything into that namespace (as an operator's own overlay would)."""
    target = path
    if namespace:
        wrapper = tmp_path / f"wrap-{namespace}"
        wrapper.mkdir()
        (wrapper / "kustomization.yaml").write_text(
            yaml.safe_dump({"namespace": namespace, "resources": [os.path.relpath(path, wrapper)]})
        )
        target = wrapper
    rendered = subprocess.run([require_kubectl(), "kustomize", str(target)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def portal_deployments(objects: list[dict]) -> dict[str, dict]:
    deployments = by_kind(objects, "Deployment")
    return {p: deployments[f"pampam-{p}"] for p in PROCESSES}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(deployment: dict, name: str) -> dict:
    return next(c for c in pod_spec(deployment)["containers"] if c["name"] == name)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, kustomize(DEPLOY / "overlays" / request.param)


# -- what each overlay renders ----------------------------------------------------------------------


def test_every_overlay_has_the_portals_processes_and_their_companions(rendered):
    name, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "Job"} <= kinds
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    assert set(portal_deployments(objects)) == set(PROCESSES)
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Secret"}  # least privilege; no secret in git
    assert {o["metadata"].get("namespace") for o in objects} == {"pampam"}


def test_every_container_runs_unprivileged_on_a_read_only_root_with_requests_and_limits(rendered):
    _, objects = rendered
    for workload in [*by_kind(objects, "Deployment").values(), *by_kind(objects, "Job").values()]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for each in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{workload['metadata']['name']}/{each['name']}"
            security = each["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(each["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(each["resources"]["limits"]), where


def test_the_web_rolls_out_without_losing_capacity_and_drains_before_it_stops(rendered):
    _, objects = rendered
    web = portal_deployments(objects)["web"]
    assert web["spec"]["replicas"] >= 2
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pause = container(web, "web")["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    uvicorn_grace = 30  # --timeout-graceful-shutdown in deploy/Dockerfile
    assert pod_spec(web)["terminationGracePeriodSeconds"] > int(pause[1]) + uvicorn_grace
    assert "--timeout-graceful-shutdown" in (DEPLOY / "Dockerfile").read_text()


def test_the_web_is_ready_when_its_dependencies_answer_and_alive_when_it_answers(rendered):
    _, objects = rendered
    web = container(portal_deployments(objects)["web"], "web")
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    host = {h["name"]: h["value"] for h in web["readinessProbe"]["httpGet"]["httpHeaders"]}["Host"]
    settings = by_kind(objects, "ConfigMap")["pampam-settings"]["data"]
    assert host in settings["ALLOWED_HOSTS"].split(",")


def test_the_other_processes_are_alive_while_their_loop_turns(rendered):
    _, objects = rendered
    alive_file = by_kind(objects, "ConfigMap")["pampam-settings"]["data"]["PAMPAM_ALIVE_FILE"]
    for process in ("worker", "cron", "watcher"):
        probe = container(portal_deployments(objects)[process], process)["livenessProbe"]["exec"]["command"]
        assert probe[:4] == ["python", "-m", "plumbing.alive", alive_file], process
    worker = container(portal_deployments(objects)["worker"], "worker")["command"]
    assert worker[worker.index("--worker-class") + 1] == "plumbing.queues.LivenessWorker"


def test_watcher_and_cron_run_a_standby_and_elect_a_leader_through_leases_they_may_use(rendered):
    _, objects = rendered
    deployments = portal_deployments(objects)
    settings = by_kind(objects, "ConfigMap")["pampam-settings"]["data"]
    assert settings["LEADER_ELECTION"] == "1"
    assert deployments["watcher"]["spec"]["replicas"] >= 2
    assert deployments["cron"]["spec"]["replicas"] >= 2
    assert container(deployments["cron"], "cron")["command"] == ["python", "manage.py", "cron"]
    (role,) = by_kind(objects, "Role").values()
    lease_rules = [r for r in role["rules"] if r["resources"] == ["leases"]]
    assert all(r["apiGroups"] == ["coordination.k8s.io"] for r in lease_rules)
    named = next(r for r in lease_rules if "resourceNames" in r)
    assert set(named["resourceNames"]) == {watch_clusters.LEASE, cron.LEASE}
    assert set(named["verbs"]) == {"get", "update"}
    assert any(r["verbs"] == ["create"] and "resourceNames" not in r for r in lease_rules)
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    accounts = {pod_spec(d)["serviceAccountName"] for d in deployments.values()}
    assert accounts == {s["name"] for s in binding["subjects"] if s["kind"] == "ServiceAccount"}


def test_secrets_are_files_from_the_mounted_secret_never_values(rendered):
    _, objects = rendered
    settings = by_kind(objects, "ConfigMap")["pampam-settings"]["data"]
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CREDENTIALS_KEY", "METRICS_TOKEN"):
        assert name not in settings
        assert settings[f"{name}_FILE"] == f"{SECRET_MOUNT}/{name}"
    for deployment in portal_deployments(objects).values():
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for each in [*spec["initContainers"], *spec["containers"]]:
            mounts = {m["mountPath"]: m for m in each["volumeMounts"]}
            assert mounts[SECRET_MOUNT]["readOnly"] is True
            assert volumes[mounts[SECRET_MOUNT]["name"]]["secret"]["secretName"] == "pampam"
            assert not any(e.get("name") in settings or "SECRET" in e.get("name", "") for e in each.get("env", []))


def test_migrations_run_once_in_a_job_and_every_pod_waits_for_them(rendered):
    _, objects = rendered
    job = by_kind(objects, "Job")["pampam-migrate"]
    assert pod_spec(job)["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for process, deployment in portal_deployments(objects).items():
        (wait,) = pod_spec(deployment)["initContainers"]
        assert "migrate --check" in " ".join(wait["command"]), process


def test_disruption_budgets_and_the_autoscaler_keep_the_web_serving(rendered):
    _, objects = rendered
    web = portal_deployments(objects)["web"]
    labels = web["spec"]["template"]["metadata"]["labels"]
    budget = by_kind(objects, "PodDisruptionBudget")["pampam-web"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 0 < budget["spec"]["minAvailable"] < web["spec"]["replicas"]
    budgets = by_kind(objects, "PodDisruptionBudget")
    assert {f"pampam-{p}" for p in PROCESSES} <= set(budgets)
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["pampam-web"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pampam-web"}
    assert hpa["spec"]["minReplicas"] >= web["spec"]["replicas"] - 1 >= 1


def test_the_istio_overlay_requires_mutual_tls_and_keeps_websockets_open():
    objects = kustomize(DEPLOY / "overlays" / "istio")
    (peer,) = by_kind(objects, "PeerAuthentication").values()
    assert peer["spec"]["mtls"]["mode"] == "STRICT"
    assert "selector" not in peer["spec"]  # the whole namespace
    for deployment in portal_deployments(objects).values():
        assert deployment["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    job = by_kind(objects, "Job")["pampam-migrate"]
    assert job["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    routes = {r["name"]: r for r in by_kind(objects, "VirtualService")["pampam"]["spec"]["http"]}
    assert routes["websockets"]["match"] == [{"uri": {"prefix": "/ws/"}}]
    assert routes["websockets"]["timeout"] == "0s"
    rule = by_kind(objects, "DestinationRule")["pampam"]["spec"]
    assert rule["host"] == "pampam"
    assert rule["trafficPolicy"]["connectionPool"]["http"]["h2UpgradePolicy"] == "DO_NOT_UPGRADE"


def test_the_longhorn_overlay_keeps_postgresql_and_redis_on_longhorn_volumes():
    objects = kustomize(DEPLOY / "overlays" / "longhorn")
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert {c["spec"]["storageClassName"] for c in claims.values()} == {"longhorn"}
    deployments = by_kind(objects, "Deployment")
    for store in ("pampam-postgres", "pampam-redis"):
        assert deployments[store]["spec"]["strategy"] == {"type": "Recreate"}  # one writer per volume
        (volume,) = [v for v in pod_spec(deployments[store])["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_managed_namespaces_get_only_what_the_portal_does_there():
    objects = kustomize(DEPLOY / "managed-namespace")
    (role,) = by_kind(objects, "Role").values()
    granted = {(r["apiGroups"][0], res): set(r["verbs"]) for r in role["rules"] for res in r["resources"]}
    assert granted == {
        ("apps", "deployments"): {"get", "list", "watch", "patch"},
        ("apps", "replicasets"): {"get", "list", "watch"},
        ("", "pods"): {"get", "list", "watch"},
    }
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pampam", "namespace": "pampam"}]


# -- the probes do what they say ----------------------------------------------------------------------


def test_the_liveness_probe_command_fails_on_a_stale_or_missing_file(tmp_path):
    objects = kustomize(DEPLOY / "base")
    command = container(portal_deployments(objects)["cron"], "cron")["livenessProbe"]["exec"]["command"]
    alive = tmp_path / "alive"
    probe = [sys.executable, *command[1:3], str(alive), command[4]]

    def run():
        return subprocess.run(probe, cwd=ROOT, capture_output=True, timeout=30).returncode

    assert run() == 1
    alive.touch()
    assert run() == 0
    stale = time.time() - float(command[4]) - 5
    os.utime(alive, (stale, stale))
    assert run() == 1


@pytest.mark.django_db
def test_the_web_probes_answer_with_the_manifests_host_header(settings):
    objects = kustomize(DEPLOY / "base")
    web = container(portal_deployments(objects)["web"], "web")
    settings.ALLOWED_HOSTS = by_kind(objects, "ConfigMap")["pampam-settings"]["data"]["ALLOWED_HOSTS"].split(",")
    for probe in ("livenessProbe", "readinessProbe"):
        action = web[probe]["httpGet"]
        host = {h["name"]: h["value"] for h in action["httpHeaders"]}["Host"]
        answer = Client().get(action["path"], HTTP_HOST=host)
        assert answer.status_code == 200, (probe, answer.content)


# -- applied to the sandbox cluster --------------------------------------------------------------------


def state_of(sandbox) -> tuple[int, list]:
    """The cluster's resourceVersion and every stored object's key: what a dry run must not touch."""
    with sandbox.cluster.lock:
        return sandbox.cluster.rv, sorted(sandbox.cluster.objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_applies_to_a_fresh_namespace_and_its_deployments_become_available(overlay, make_kube, tmp_path):
    sandbox = make_kube(ready_after=0.1)
    kubectl = Kubectl(sandbox.url, tmp_path, require_kubectl())
    namespace = f"pampam-{overlay}"
    manifest = yaml.safe_dump_all(kustomize(DEPLOY / "overlays" / overlay, tmp_path, namespace))
    kubectl("create", "namespace", namespace)
    kubectl("create", "secret", "generic", "pampam", "-n", namespace, "--from-literal=SECRET_KEY=s")
    if overlay == "longhorn":
        kubectl("create", "secret", "generic", "pampam-postgres", "-n", namespace, "--from-literal=POSTGRES_PASSWORD=p")

    before = state_of(sandbox)
    dry = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest)
    assert "(server dry run)" in dry.stdout
    assert state_of(sandbox) == before  # nothing stored, no resourceVersion spent

    applied = kubectl("apply", "-f", "-", stdin=manifest)
    assert applied.stdout.count(" created") == len(list(yaml.safe_load_all(manifest)))
    deployments = by_kind(list(yaml.safe_load_all(manifest)), "Deployment")
    kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment", "--all", "--timeout=60s", timeout=90)
    for name, deployment in deployments.items():
        live = sandbox.deployment(namespace, name)
        assert live["status"]["availableReplicas"] == deployment["spec"]["replicas"], name
    again = kubectl("apply", "-f", "-", stdin=manifest)
    assert again.stdout.count(" unchanged") == len(list(yaml.safe_load_all(manifest))), again.stdout


# -- alert rules ----------------------------------------------------------------------------------------


def test_the_alert_rules_pass_promtool_and_fire_on_the_series_that_should_raise_them():
    promtool = require_tool("promtool")
    rules = DEPLOY / "prometheus"
    checked = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=rules, capture_output=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_portals_own_web_rolls_out_without_ever_serving_from_fewer_pods(make_kube, tmp_path):
    """The zero-downtime promise, kept for the portal itself: during its rolling update the
    number of Ready, non-terminating web pods never drops below the replica count."""
    sandbox = make_kube(ready_after=0.2)
    kubectl = Kubectl(sandbox.url, tmp_path, require_kubectl())
    namespace = "pampam-upgrade"
    manifest = yaml.safe_dump_all(kustomize(DEPLOY / "overlays" / "production", tmp_path, namespace))
    kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", stdin=manifest)
    kubectl("rollout", "status", "deployment/pampam-web", "-n", namespace, "--timeout=60s", timeout=90)
    replicas = sandbox.deployment(namespace, "pampam-web")["spec"]["replicas"]
    recorder = sandbox.observe_rollout(namespace, "pampam-web")
    kubectl("set", "image", "deployment/pampam-web", "web=registry.example/pampam:1.0.1", "-n", namespace)
    kubectl("rollout", "status", "deployment/pampam-web", "-n", namespace, "--timeout=60s", timeout=90)
    recorder.stop()
    states = [s for s in recorder.states if s["deployment"]]
    assert len({name for s in states for name in s["replicasets"]}) == 2  # it really rolled out
    assert min(s["ready"] for s in states) >= replicas
