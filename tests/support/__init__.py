"""Helpers shared by the test modules (fixtures live in tests/conftest.py).

Waits are generous: they return as soon as the condition holds, and their deadlines are long
enough for a loaded CI machine.
"""

import socket
import subprocess
import time

import django_rq
from django.utils import timezone
from kubernetes import client
from rq.job import Job

from releases import flows, states
from releases.models import Deployment
from tests.factories import make_deployment, make_release

DEADLINE = 60.0

# The sandbox GitHub of the `github_sandbox` fixture: one repository with 30 commits.
GITHUB_TOKEN = "pampam-test-token"
GITHUB_REPO = "acme/web"

# The sandbox cluster the kube fixtures start: one Deployment `storefront` in dev.
REPO = "registry.example/storefront"
NAME = "storefront"


def wait_until(predicate, timeout: float = DEADLINE, step: float = 0.02, what: str = ""):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout`
    saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or predicate}")
        time.sleep(step)


def stop_process(process: subprocess.Popen, timeout: float = 5) -> None:
    """Terminate `process` if it still runs; kill it if it has not ended after `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_scheduled_now(due_only: bool = False) -> int:
    """Move jobs waiting for their time (retries, polls) into the queue now, or only those whose
    time has come (`due_only`, as rq's scheduler does); how many moved."""
    queue = django_rq.get_queue("default")
    registry = queue.scheduled_job_registry
    ids = registry.get_jobs_to_schedule(int(time.time())) if due_only else registry.get_job_ids()
    moved = 0
    for job in Job.fetch_many(ids, connection=queue.connection):
        if job is not None:
            registry.remove(job)
            queue.enqueue_job(job)
            moved += 1
    return moved


def discard_jobs(func_name: str) -> None:
    """Drop queued jobs of `func_name` (tests that move states by hand have nothing for them to do)."""
    queue = django_rq.get_queue("default")
    for job in queue.jobs:
        if job.func_name == func_name:
            queue.remove(job)


def wait_state(deployment, *wanted, timeout: float = DEADLINE, run_jobs=None):
    """Wait until `deployment` is in one of `wanted` (running queued jobs meanwhile, if given)."""

    def reached():
        if run_jobs:
            run_jobs()
        return Deployment.objects.values_list("state", flat=True).get(pk=deployment.pk) in wanted

    wait_until(reached, timeout)
    deployment.refresh_from_db()
    return deployment


def kube_seed(replicas=4, **spec) -> dict:
    return {
        "namespaces": ["dev", "staging", "prod"],
        "deployments": [
            {"namespace": "dev", "name": NAME, "image": f"{REPO}:1.0.0", "replicas": replicas, "spec": spec}
        ],
    }


def connect(cast, sandbox, *, wait=True):
    """Point the cast's cluster at a kube `sandbox`; record 1.0.0 as what runs in dev."""
    cast.cluster.api_url = sandbox.url
    cast.cluster.save()
    current = make_release(cast.service, version="1.0.0")
    make_deployment(current, cast.dev, state=states.SUCCEEDED, finished_at=timezone.now(), started_at=timezone.now())
    if wait:
        sandbox.wait_for(lambda c: sandbox.rollout_complete("dev", NAME), timeout=DEADLINE)
    return cast


def cluster_image(sandbox, namespace="dev", name=NAME) -> str:
    return sandbox.deployment(namespace, name)["spec"]["template"]["spec"]["containers"][0]["image"]


def revision(sandbox, namespace="dev", name=NAME) -> str | None:
    return sandbox.deployment(namespace, name)["metadata"]["annotations"].get("deployment.kubernetes.io/revision")


def deploy(cast, version, environment=None, user=None):
    release = make_release(cast.service, version=version)
    return flows.request_deployment(user or cast.alice, release, environment or cast.dev)


def apps_api(sandbox) -> client.AppsV1Api:
    configuration = client.Configuration()
    configuration.host = sandbox.url
    return client.AppsV1Api(client.ApiClient(configuration))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for a process a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
