"""Kubernetes API requests per rollout, portal vs `kubectl rollout status`, and watch connections.

1. One rollout of a 4-replica Deployment in the sandbox cluster, driven by the portal (the
   run job patches, the watcher follows) while the real `kubectl rollout status` watches the
   same rollout. The sandbox logs every request with its User-Agent, so the two are counted
   apart. Discovery requests kubectl makes (first run, empty cache) are shown separately.
2. Watch connections the watcher holds for N services × M environments (one namespace per
   environment), sampled while every one of the N × M services rolls out at once.

Runs on a throw-away test database (created and dropped here), Redis from REDIS_URL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_kube REDIS_URL=redis://127.0.0.1:6379/5 \\
      SECRET_KEY=x .venv/bin/python bench/kube_rollout_requests.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django

django.setup()

from django.db import connection  # noqa: E402

from clusters.models import Cluster, Environment  # noqa: E402
from clusters.watcher import Watcher  # noqa: E402
from releases import jobs, states  # noqa: E402
from releases.models import Deployment, Release, Service  # noqa: E402
from sandbox.kube import start  # noqa: E402


def wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(predicate)
        time.sleep(0.02)


def world(sandbox, services: int, environments: int, replicas: int):
    """Cluster, environments (one namespace each) and services whose Deployments run 1.0.0."""
    Deployment.objects.all().delete()
    Release.objects.all().delete()
    Service.objects.all().delete()
    Environment.objects.all().delete()
    Cluster.objects.all().delete()
    cluster = Cluster.objects.create(name="bench", api_url=sandbox.url)
    envs = [
        Environment.objects.create(slug=f"env{m}", name=f"Env {m}", position=m, cluster=cluster, namespace=f"ns{m}")
        for m in range(environments)
    ]
    rows = []
    for n in range(services):
        service = Service.objects.create(
            slug=f"svc{n}",
            name=f"Svc {n}",
            image_repository=f"reg/svc{n}",
            k8s_deployment=f"svc{n}",
            k8s_container="app",
        )
        Release.objects.create(service=service, version="1.0.0", image=f"reg/svc{n}:1.0.0")
        for env in envs:
            sandbox.cluster.create(
                "deployments",
                env.namespace,
                {
                    "metadata": {"name": service.k8s_deployment},
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": {"app": service.slug}},
                        "template": {
                            "metadata": {"labels": {"app": service.slug}},
                            "spec": {"containers": [{"name": "app", "image": f"reg/svc{n}:1.0.0"}]},
                        },
                    },
                },
            )
        rows.append(service)
    return envs, rows


def approved(service, env, version="2.0.0"):
    release, _ = Release.objects.get_or_create(
        service=service, version=version, defaults={"image": f"{service.image_repository}:{version}"}
    )
    return Deployment.objects.create(service=service, environment=env, release=release, state=states.APPROVED)


def kubectl_env(url: str, home: Path) -> dict:
    config = home / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: sandbox\n  cluster: {{server: '{url}'}}\n"
        "contexts:\n- name: sandbox\n  context: {cluster: sandbox, user: me, namespace: ns0}\n"
        "current-context: sandbox\nusers:\n- name: me\n  user: {}\n"
    )
    return {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(home / "cache"), "HOME": str(home)}


def per_rollout() -> None:
    namespaces = [f"ns{m}" for m in range(3)]
    sandbox = start(ready_after=1.0, seed={"namespaces": namespaces})
    watcher = None
    try:
        envs, services = world(sandbox, services=1, environments=3, replicas=4)
        sandbox.wait_for(lambda c: sandbox.rollout_complete("ns0", "svc0"), timeout=30)
        watcher = Watcher(name="bench", heartbeat_seconds=1).start()
        wait(lambda: watcher.open_streams() == 9)
        time.sleep(0.3)
        mark = len(sandbox.requests_log)

        deployment = approved(services[0], envs[0])
        jobs.run_deployment(deployment.pk)  # patch + first observation, as the worker would
        home = Path(tempfile.mkdtemp())
        kubectl = None
        if shutil.which("kubectl"):
            kubectl = subprocess.Popen(
                ["kubectl", "rollout", "status", "deployment/svc0", "--timeout=60s"],
                env=kubectl_env(sandbox.url, home),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait(lambda: Deployment.objects.get(pk=deployment.pk).state == states.SUCCEEDED)
        output = kubectl.communicate(timeout=60)[0] if kubectl else ""
        shutil.rmtree(home, ignore_errors=True)
        log = list(sandbox.requests_log)[mark:]
    finally:
        if watcher:
            watcher.shutdown()
        sandbox.stop()

    portal = [r for r in log if "kubectl" not in r["user_agent"]]
    kubectl_requests = [r for r in log if "kubectl" in r["user_agent"]]
    discovery = [r for r in kubectl_requests if "/namespaces/" not in r["path"]]
    print("1. One rollout: svc0 1.0.0 → 2.0.0, 4 replicas (maxSurge 1, maxUnavailable 1), pods ready after 1 s")
    print(f"   portal (run job + watcher) requests during the rollout: {len(portal)}")
    for r in portal:
        print(f"      {r['method']:5} {r['path'][:110]}")
    print("   portal watch connections opened for it:", sum("watch=true" in r["path"] for r in portal))
    if kubectl:
        print(
            f"   kubectl rollout status requests: {len(kubectl_requests)} "
            f"({len(discovery)} discovery/version, {len(kubectl_requests) - len(discovery)} for the rollout)"
        )
        for r in kubectl_requests:
            print(f"      {r['method']:5} {r['path'][:110]}")
        print("   kubectl said:", " | ".join(line for line in output.splitlines() if line.strip())[-200:])
    else:
        print("   kubectl not installed: skipped")


def connections(services: int, environments: int) -> None:
    sandbox = start(ready_after=0.3, seed={"namespaces": [f"ns{m}" for m in range(environments)]})
    watcher = None
    try:
        envs, rows = world(sandbox, services, environments, replicas=2)
        watcher = Watcher(name="bench", heartbeat_seconds=1).start()
        wait(lambda: watcher.open_streams() == 3 * environments)
        time.sleep(0.3)
        idle = _open(sandbox)
        mark = len(sandbox.requests_log)
        deployments = [approved(s, e) for s in rows for e in envs]
        started = time.monotonic()
        for d in deployments:
            jobs.run_deployment(d.pk)
        samples = []

        def done():
            samples.append(_open(sandbox))
            return (
                not Deployment.objects.filter(pk__in=[d.pk for d in deployments])
                .exclude(state=states.SUCCEEDED)
                .exists()
            )

        wait(done, timeout=120)
        elapsed = time.monotonic() - started
        log = list(sandbox.requests_log)[mark:]
    finally:
        if watcher:
            watcher.shutdown()
        sandbox.stop()
    watches = sum("watch=true" in r["path"] for r in log)
    print(
        f"   {services:>2} services × {environments} environments: {len(deployments):>2} rollouts at once, "
        f"open watch connections idle {idle}, during rollouts min {min(samples)} max {max(samples)}, "
        f"new watch requests {watches}, all succeeded in {elapsed:.1f} s, "
        f"other requests {len(log) - watches} ({(len(log) - watches) / len(deployments):.1f} per rollout, run job only)"
    )


def _open(sandbox) -> int:
    with sandbox.cluster.lock:
        return len(sandbox.cluster.watchers)


def main() -> None:
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        per_rollout()
        print("2. Watch connections held by the watcher (3 per namespace, whatever the number of rollouts)")
        for services, environments in ((3, 3), (10, 5)):
            connections(services, environments)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
