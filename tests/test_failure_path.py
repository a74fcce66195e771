"""The failure path, end to end: each finding of the failure-path review, reproduced against the
sandbox cluster with the real client, then shown fixed.

Jobs run as the worker runs them (`run_jobs`, retries brought forward); the watcher runs in
threads where a test needs the cluster watched.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rq.scheduler import RQScheduler

from clusters.models import Cluster, Workload
from clusters.watcher import Watcher
from plumbing.integrations import kube as kube_api
from releases import flows, jobs, states
from releases.models import Deployment
from releases.reconcile import reconcile
from sandbox.jenkins import start as start_jenkins
from tests.factories import make_release
from tests.support import NAME, REPO, cluster_image, connect, deploy, revision, wait_state, wait_until


def progressing_reason(sandbox) -> str:
    conditions = sandbox.deployment("dev", NAME).get("status", {}).get("conditions") or []
    return next((c.get("reason", "") for c in conditions if c["type"] == "Progressing"), "")


def record_before(cast, deployment) -> None:
    """What run_deployment writes down before it patches (the image, revision and condition before)."""
    jobs._record_before(deployment, kube_api.read_deployment(cast.cluster, "dev", NAME))


def patch_as(cast, deployment) -> dict:
    """The PATCH run_deployment sends, carrying the deployment's id."""
    return kube_api.set_image(
        cast.cluster,
        "dev",
        NAME,
        NAME,
        deployment.release.image,
        change_cause=jobs.change_cause(deployment),
        deployment_id=deployment.pk,
    )


def patches(sandbox) -> int:
    return sum(r["method"] == "PATCH" for r in list(sandbox.requests_log))


def test_it_judges_a_rollback_after_a_timed_out_rollout_by_the_rollback_itself(cast_tx, make_kube, run_jobs):
    """Finding 1: the Progressing condition the failed rollout left said "exceeded its progress
    deadline", and the rollback was failed on it before the controller had seen the rollback."""
    sandbox = make_kube(ready_after=0.2, replicas=1, progressDeadlineSeconds=3)
    cast = connect(cast_tx, sandbox)
    from clusters.watcher import Watcher

    watcher = Watcher(name="t", heartbeat_seconds=0.2).start()
    try:
        broken = deploy(cast, "1.1.0-missing")
        run_jobs()
        wait_state(broken, states.FAILED)
        sandbox.wait_for(lambda c: progressing_reason(sandbox) == "ProgressDeadlineExceeded", timeout=60)

        rollback = flows.rollback(cast.alice, cast.service, cast.dev)
        run_jobs()
        rollback = wait_state(rollback, states.SUCCEEDED, states.FAILED)
    finally:
        watcher.shutdown()
    assert rollback.state == states.SUCCEEDED, rollback.reason
    assert rollback.state_label == "Rolled back"
    assert cluster_image(sandbox) == f"{REPO}:1.0.0"
    assert rollback.baseline["reason"] == "ProgressDeadlineExceeded"


def test_it_retries_a_patch_while_the_api_server_is_unreachable(kube_cast, kube, watcher, run_jobs):
    """Finding 4/5: the API unreachable at approval failed the deployment at once, with no retry."""
    kube.pause_http(seconds=3)
    deployment = deploy(kube_cast, "1.1.0")
    # Retries at their real times (about 2 s, then 5 s later): the second one finds the API back.
    run_jobs(until=lambda: Deployment.objects.get(pk=deployment.pk).state != states.APPROVED, real_time=True)
    deployment = wait_state(deployment, states.SUCCEEDED)
    retry = deployment.events.get(kind="retry")
    assert "Kubernetes could not be reached" in retry.message
    assert cluster_image(kube) == f"{REPO}:1.1.0"


def test_it_does_not_patch_twice_after_a_worker_died_between_its_patch_and_its_commit(kube_cast, kube, run_jobs):
    """Finding 5: the re-run read the already-patched object and stored its own revision as the
    revision before; two PATCHes were sent."""
    deployment = deploy(kube_cast, "1.1.0")
    # What the killed worker did before dying: record the state before, then PATCH.
    record_before(kube_cast, deployment)
    patch_as(kube_cast, deployment)
    kube.wait_for(lambda c: revision(kube) == "2", timeout=30)
    sent = patches(kube)

    run_jobs()  # the doorbell rings again (the reconciler, or RQ's retry)
    deployment.refresh_from_db()
    assert deployment.state in (states.ROLLING_OUT, states.SUCCEEDED)
    assert patches(kube) == sent  # found its own change instead of repeating it
    assert (deployment.revision_before, deployment.image_before) == ("1", f"{REPO}:1.0.0")


def test_it_undoes_a_patch_that_landed_after_the_cancel(kube_cast, kube, run_jobs):
    """A change and its transition never disagree: cancelled while the PATCH was in flight."""
    deployment = deploy(kube_cast, "1.1.0")
    record_before(kube_cast, deployment)
    flows.cancel(kube_cast.alice, deployment, "Wrong build.")
    run_jobs()  # the stop runs first: nothing of ours in the cluster yet
    deployment.refresh_from_db()
    assert deployment.followup == ""
    patched = patch_as(kube_cast, deployment)
    jobs._rolling_out(deployment, patched)  # the late worker's transition is refused...
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state == states.CANCELLED
    assert cluster_image(kube) == f"{REPO}:1.0.0"  # ...and its patch does not stay behind
    assert deployment.events.filter(message="The change reached the cluster after the cancel; stopping it.").exists()


def test_it_rings_a_stop_again_until_the_cluster_takes_it(cast_tx, make_kube, run_jobs, settings):
    """Finding 4: a cancelled rollout whose stop did not go through had nothing to re-ring it."""
    sandbox = make_kube(ready_after=5)
    cast = connect(cast_tx, sandbox, wait=False)
    deployment = deploy(cast, "1.1.0")
    run_jobs()
    sandbox.wait_for(lambda c: revision(sandbox) == "2", timeout=30)
    sandbox.pause_http()
    deployment.refresh_from_db()
    flows.cancel(cast.alice, deployment, "Wrong build.")
    run_jobs()  # every retry fails: the API server is down
    deployment.refresh_from_db()
    assert deployment.followup == Deployment.STOP
    sandbox.resume_http()
    assert reconcile()["followups"] == 1
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.followup == ""
    assert cluster_image(sandbox) == f"{REPO}:1.0.0"
    assert reconcile()["followups"] == 0


def test_it_closes_a_superseded_failure_once_and_never_undoes_the_newer_deployment(kube_cast, kube, watcher, run_jobs):
    """Finding 5: a lost auto-rollback job, re-rung after a newer release went out, patched prod
    back to an old image and then raised IntegrityError."""
    kube_cast.dev.auto_rollback = True
    kube_cast.dev.save()
    crashed = deploy(kube_cast, "1.1.0-crash")
    run_jobs()
    crashed = wait_state(crashed, states.FAILED)  # the watcher fails it; its auto-rollback job is queued...
    assert crashed.followup == Deployment.AUTO_ROLLBACK
    import django_rq

    django_rq.get_queue("default").empty()  # ...and lost (a worker killed, Redis restarted)
    newer = deploy(kube_cast, "1.2.0")
    newer = wait_state(newer, states.SUCCEEDED, run_jobs=run_jobs)

    for _ in range(3):  # the reconciler rings the lost bell, again and again
        reconcile()
        run_jobs()
    crashed.refresh_from_db()
    assert crashed.followup == ""
    assert crashed.events.filter(kind="rollback", message__contains=f"deployment #{newer.pk}").count() == 1
    assert not Deployment.objects.filter(kind=Deployment.ROLLBACK).exists()
    assert cluster_image(kube) == f"{REPO}:1.2.0"


def test_it_rolls_a_second_crash_back_to_the_last_good_release_not_the_first_crash(kube_cast, kube, watcher, run_jobs):
    """Finding 2: auto-rollback re-installed the crashing image of the previous failure."""
    kube_cast.dev.auto_rollback = True
    kube_cast.dev.save()
    for version in ("1.1.0-crash", "1.2.0-crash"):
        crashed = deploy(kube_cast, version)
        run_jobs(until=lambda crashed=crashed: Deployment.objects.filter(rolls_back=crashed).exists())
        rollback = Deployment.objects.get(rolls_back=crashed)
        rollback = wait_state(rollback, states.SUCCEEDED, run_jobs=run_jobs)
        assert rollback.release.version == "1.0.0"
        assert cluster_image(kube) == f"{REPO}:1.0.0"
    workload = Workload.objects.get(environment=kube_cast.dev, name=NAME)
    assert workload.image == workload.expected_image == f"{REPO}:1.0.0"


def test_it_never_rolls_a_failed_rollback_back_again(kube_cast, kube, watcher, run_jobs):
    kube_cast.dev.auto_rollback = True
    kube_cast.dev.save()
    good = make_release(kube_cast.service, version="0.9.0-crash")  # "last good" here crashes too
    Deployment.objects.filter(release__version="1.0.0").update(release=good)
    crashed = deploy(kube_cast, "1.1.0-crash")
    run_jobs(until=lambda: Deployment.objects.filter(rolls_back=crashed).exists())
    rollback = wait_state(Deployment.objects.get(rolls_back=crashed), states.FAILED, run_jobs=run_jobs)
    assert rollback.state_label == "Rollback failed"
    run_jobs()
    assert Deployment.objects.filter(kind=Deployment.ROLLBACK).count() == 1
    assert rollback.followup == ""


def test_it_fails_a_rollout_nobody_saw_finish_once_past_its_deadline(kube_cast, kube, run_jobs, settings):
    deployment = deploy(kube_cast, "1.1.0")
    run_jobs()
    Deployment.objects.filter(pk=deployment.pk).update(
        observed_at=timezone.now() - timedelta(hours=1), state=states.ROLLING_OUT
    )
    kube.pause_http()
    reconcile()
    deployment = wait_until(lambda: Deployment.objects.filter(pk=deployment.pk, state=states.FAILED).first())
    assert deployment.reason.startswith("No progress seen for")


def test_it_runs_again_a_deployment_whose_worker_was_killed_in_the_middle_of_it(
    kube_cast, kube, run_jobs, settings, tmp_path
):
    """Found by bench/chaos.py: the worker killed (kill -9) while it ran an approved deployment
    left the job "started" in Redis; `enqueue` took that for a bell still ringing, so the
    reconciler never rang it again, and the deployment sat in Approved for ten minutes, until a
    worker's next registry maintenance."""
    settings.RECONCILE_INTERVAL_SECONDS = 0  # the reconciler looks at everything on each pass
    api_url = kube_cast.cluster.api_url
    with socket.socket() as silent:  # an API server that accepts and never answers: the job hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        Cluster.objects.filter(pk=kube_cast.cluster.pk).update(api_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        deployment = deploy(kube_cast, "1.1.0")
        worker = start_worker(tmp_path / "worker.log")
        try:
            wait_until(lambda: running(f"run_deployment-{deployment.pk}-"), timeout=60)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    Cluster.objects.filter(pk=kube_cast.cluster.pk).update(api_url=api_url)

    # Its heartbeat still holds: the worker might be alive, so nobody runs it a second time.
    reconcile()
    run_jobs()
    assert Deployment.objects.get(pk=deployment.pk).state == states.APPROVED

    # The heartbeat lapses: the reconciler's next pass hands the job back to the queue (a worker
    # would only at its next start or registry maintenance, ten minutes later).
    heartbeats_lapse()
    reconcile()
    assert not running(f"run_deployment-{deployment.pk}-")
    run_jobs()
    assert Deployment.objects.get(pk=deployment.pk).state in (states.ROLLING_OUT, states.SUCCEEDED)
    deployment.refresh_from_db()
    assert patches(kube) == 1
    assert cluster_image(kube) == f"{REPO}:1.1.0"
    assert deployment.image_before == f"{REPO}:1.0.0"


def start_worker(log_path) -> subprocess.Popen:
    """`manage.py rqworker` as a process of its own on the test database and Redis (one process:
    rq's SimpleWorker runs the job itself, so killing it kills the job)."""
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/pampam")
    url = server._replace(path=f"/{connection.settings_dict['NAME']}").geturl()
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "default", "--burst", "--worker-class", "rq.SimpleWorker"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def running(prefix: str) -> bool:
    registry = django_rq.get_queue("default").started_job_registry
    return any(job_id.startswith(prefix) for job_id in registry.get_job_ids(cleanup=False))


def heartbeats_lapse() -> None:
    """As if the 90 s a running job's heartbeat covers had passed without a word from its worker."""
    registry = django_rq.get_queue("default").started_job_registry
    members = registry.connection.zrange(registry.key, 0, -1)
    registry.connection.zadd(registry.key, dict.fromkeys(members, time.time() - 1), xx=True)


def test_it_runs_a_retry_that_falls_due_while_no_scheduler_runs(kube_cast, kube, run_jobs):
    """Found by bench/chaos.py: a worker killed with its scheduler left rq's scheduler lock behind
    (61 s); the worker started in its place did not get it and asked again only at its maintenance,
    ten minutes later, so meanwhile no retry (and no next look at a Jenkins job) ran."""
    connection = django_rq.get_queue("default").connection
    scheduled = django_rq.get_queue("default").scheduled_job_registry
    kube.pause_http()
    deployment = deploy(kube_cast, "1.1.0")
    run_jobs(later=False)  # the API server is down: the run waits for its retry
    kube.resume_http()
    assert [job_id for job_id in scheduled.get_job_ids() if job_id.startswith(f"run_deployment-{deployment.pk}-")]
    wait_until(lambda: scheduled.get_jobs_to_schedule(int(time.time())), timeout=30)

    # The lock of a scheduler that may still be alive: the reconciler leaves its work to it.
    lock = RQScheduler.get_locking_key("default")
    connection.set(lock, "a-worker-killed-moments-ago", ex=61)
    reconcile()
    run_jobs(later=False)
    assert Deployment.objects.get(pk=deployment.pk).state == states.APPROVED

    connection.delete(lock)  # expired; the worker started since did not take it
    reconcile()
    run_jobs(later=False)
    deployment = wait_state(deployment, states.ROLLING_OUT, states.SUCCEEDED)
    assert patches(kube) == 1
    assert deployment.image_before == f"{REPO}:1.0.0"


def test_it_stops_a_jenkins_rollout_cancelled_after_the_job_changed_the_cluster(cast_tx, make_kube, run_jobs, settings):
    """Found by the long model run: a deploy job changes the image as `kubectl set image` does,
    without the portal's deployment-id annotation, so a cancel after the job ran found "nothing
    to stop" and left the cancelled release running."""
    sandbox = make_kube(ready_after=3)  # slow pods: the cancel lands while the rollout runs
    cast = connect(cast_tx, sandbox)
    jenkins = start_jenkins(kube_url=sandbox.url, queue_seconds=0.05, build_seconds=0.2, seed={"jobs": {"deploy": {}}})
    try:
        settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = jenkins.url, jenkins.user, jenkins.token
        settings.JENKINS_POLL_SECONDS = 0.02
        cast.dev.deploy_via, cast.dev.jenkins_deploy_job = cast.dev.JENKINS, "deploy"
        cast.dev.save()
        watcher = Watcher(name="test-watcher", heartbeat_seconds=0.2).start()
        deployment = wait_state(deploy(cast, "1.1.0"), states.ROLLING_OUT, run_jobs=run_jobs)
        assert cluster_image(sandbox) == f"{REPO}:1.1.0"
        flows.cancel(cast.alice, deployment, "Wrong build.")
        wait_until(lambda: run_jobs() or not Deployment.objects.filter(pk=deployment.pk).exclude(followup="").exists())
        deployment.refresh_from_db()
        assert deployment.state == states.CANCELLED
        assert cluster_image(sandbox) == f"{REPO}:1.0.0", list(deployment.events.values_list("message", flat=True))
        assert deployment.events.filter(message__startswith="Restored").exists()
        watcher.shutdown()
    finally:
        jenkins.stop()
