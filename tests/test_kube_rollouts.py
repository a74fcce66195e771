"""Rollouts end to end through the official `kubernetes` client against the sandbox cluster.

The sandbox (sandbox.kube) runs on an ephemeral port with pods Ready after 0.2 s; the Cluster
row points at it; jobs run in-process (`run_jobs`) and the cluster watcher runs in background
threads, as `manage.py watch_clusters` would.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import WatcherHeartbeat, Workload
from clusters.watcher import Watcher
from releases import flows, states
from releases.models import Approval, Deployment
from tests.support import (
    NAME,
    REPO,
    apps_api,
    cluster_image,
    connect,
    deploy,
    revision,
    wait_state,
    wait_until,
)

# ------------------------------------------------------------------------------ success


def test_it_rolls_a_release_out_to_success_through_approval_job_and_watcher(kube_cast, kube, watcher, run_jobs):
    cast = kube_cast
    cast.dev.required_approvals = 1
    cast.dev.save()
    deployment = deploy(cast, "1.1.0")
    assert deployment.state == states.PENDING_APPROVAL
    flows.decide(cast.bob, deployment, Approval.APPROVE)
    deployment.refresh_from_db()
    assert deployment.state == states.APPROVED

    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state in (states.ROLLING_OUT, states.SUCCEEDED)
    deployment = wait_state(deployment, states.SUCCEEDED)

    assert cluster_image(kube) == f"{REPO}:1.1.0"
    events = list(deployment.events.order_by("seq"))
    transitions = [e.data["to"] for e in events if e.kind == "state"]
    assert transitions == [states.APPROVED, states.ROLLING_OUT, states.SUCCEEDED]
    progress = [e for e in events if e.kind == "progress"]
    assert len(progress) >= 2
    assert progress[-1].data["progress"]["status"] == "complete"
    assert deployment.downtime["checked"] is True
    assert deployment.downtime["dropped"] is False
    assert deployment.min_available >= 4 - 1  # desired − maxUnavailable (25% of 4)
    assert deployment.revision_before == "1"
    assert deployment.revision_after == "2"
    workload = Workload.objects.get(environment=cast.dev, name=NAME)
    assert (workload.image, workload.expected_image) == (f"{REPO}:1.1.0", f"{REPO}:1.1.0")
    assert (workload.replicas, workload.updated, workload.available) == (4, 4, 4)
    assert not workload.drifted


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("1.1.0-crash", r"Pod storefront-\S+ is crash-looping \(CrashLoopBackOff, \d+ restarts\)"),
        ("1.1.0-missing", r"Pod storefront-\S+ cannot start: (ImagePullBackOff|ErrImagePull) for image "),
    ],
)
def test_it_fails_a_rollout_whose_new_pods_cannot_run(kube_cast, kube, watcher, run_jobs, version, reason):
    deployment = deploy(kube_cast, version)
    run_jobs()
    deployment = wait_state(deployment, states.FAILED)
    assert re.search(reason, deployment.reason)
    assert deployment.events.filter(kind="state", data__to=states.FAILED, message=deployment.reason).exists()
    assert deployment.downtime["dropped"] is False  # the old pods kept serving
    assert cluster_image(kube) == f"{REPO}:{version}"  # no auto-rollback here


def test_it_fails_a_rollout_past_its_progress_deadline(cast_tx, make_kube, run_jobs):
    # Pods need 3 s to be ready; the Deployment allows 1 s without progress.
    sandbox = make_kube(ready_after=3, progressDeadlineSeconds=1)
    cast = connect(cast_tx, sandbox, wait=False)
    deployment = deploy(cast, "1.1.0")
    run_jobs()
    watcher = Watcher(name="deadline", heartbeat_seconds=0.2).start()
    try:
        deployment = wait_state(deployment, states.FAILED)
    finally:
        watcher.shutdown()
    assert 'Deployment "storefront" exceeded its progress deadline.' in deployment.reason
    assert "ContainerCreating" in deployment.reason  # what the new pods were stuck on


# ------------------------------------------------------------------------------ rollbacks


def test_it_rolls_back_automatically_where_the_environment_asks(kube_cast, kube, watcher, run_jobs):
    kube_cast.dev.auto_rollback = True
    kube_cast.dev.save()
    deployment = deploy(kube_cast, "1.1.0-crash")
    run_jobs()
    deployment = wait_state(deployment, states.FAILED)
    run_jobs(until=lambda: Deployment.objects.filter(rolls_back=deployment).exists())
    rollback = wait_state(Deployment.objects.get(rolls_back=deployment), states.SUCCEEDED, run_jobs=run_jobs)

    # The failed deployment stays failed; the rollback is a deployment of its own, by the portal.
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert "crash-looping" in deployment.reason
    assert deployment.followup == ""
    assert (rollback.kind, rollback.automatic, rollback.requested_by) == (Deployment.ROLLBACK, True, None)
    assert (rollback.release.version, rollback.previous_release.version) == ("1.0.0", "1.1.0-crash")
    assert rollback.state_label == "Rolled back"
    assert [e.data["to"] for e in rollback.events.filter(kind="state")] == [
        states.APPROVED,
        states.ROLLING_OUT,
        states.SUCCEEDED,
    ]
    assert cluster_image(kube) == f"{REPO}:1.0.0"
    assert kube.rollout_complete("dev", NAME)
    workload = Workload.objects.get(environment=kube_cast.dev, name=NAME)
    assert workload.image == workload.expected_image == f"{REPO}:1.0.0"


def test_it_rolls_back_to_the_previous_release_in_one_click(kube_cast, kube, watcher, run_jobs, client):
    deployment = deploy(kube_cast, "1.1.0")
    run_jobs()
    wait_state(deployment, states.SUCCEEDED)
    assert cluster_image(kube) == f"{REPO}:1.1.0"

    client.force_login(kube_cast.alice)
    page = client.get(f"/services/{kube_cast.service.slug}/")
    assert "Roll back to 1.0.0" in page.content.decode()
    response = client.post(f"/services/{kube_cast.service.slug}/environments/dev/rollback/")
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert response.status_code == 302
    assert response["Location"] == rollback.get_absolute_url()
    run_jobs()
    rollback = wait_state(rollback, states.SUCCEEDED)

    assert (rollback.release.version, rollback.previous_release.version) == ("1.0.0", "1.1.0")
    assert rollback.required_approvals == 0
    assert not rollback.approvals.exists()
    assert cluster_image(kube) == f"{REPO}:1.0.0"
    assert kube.rollout_complete("dev", NAME)
    assert Workload.objects.get(environment=kube_cast.dev, name=NAME).expected_image == f"{REPO}:1.0.0"


def test_it_offers_the_rollback_button_on_a_succeeded_deployment_page(kube_cast, kube, watcher, run_jobs, client):
    deployment = deploy(kube_cast, "1.1.0")
    run_jobs()
    wait_state(deployment, states.SUCCEEDED)
    client.force_login(kube_cast.alice)
    html = client.get(deployment.get_absolute_url()).content.decode()
    assert f'action="/services/{kube_cast.service.slug}/environments/dev/rollback/"' in html
    client.post(f"/services/{kube_cast.service.slug}/environments/dev/rollback/")
    run_jobs()
    wait_state(Deployment.objects.get(kind=Deployment.ROLLBACK), states.SUCCEEDED)
    assert cluster_image(kube) == f"{REPO}:1.0.0"


# ------------------------------------------------------------------------------ cancel


def start_slow_rollout(cast, sandbox, run_jobs, action):
    """A rollout that cannot finish soon (pods take 5 s), cancelled while rolling out."""
    cast.dev.cancel_action = action
    cast.dev.save()
    deployment = deploy(cast, "1.1.0")
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state == states.ROLLING_OUT
    sandbox.wait_for(lambda c: revision(sandbox) == "2", timeout=60)
    flows.cancel(cast.alice, deployment, "Wrong build.")
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state == states.CANCELLED
    return deployment


def test_it_pauses_the_rollout_when_cancelled_in_a_pause_environment(cast_tx, make_kube, run_jobs):
    sandbox = make_kube(ready_after=5)
    cast = connect(cast_tx, sandbox, wait=False)
    deployment = start_slow_rollout(cast, sandbox, run_jobs, "pause")
    assert sandbox.deployment("dev", NAME)["spec"]["paused"] is True
    assert cluster_image(sandbox) == f"{REPO}:1.1.0"  # left where it was, for someone to look at
    assert deployment.events.filter(kind="cluster", message="Paused dev/storefront.").exists()


def test_it_restores_the_previous_image_when_cancelled_in_an_undo_environment(cast_tx, make_kube, run_jobs):
    sandbox = make_kube(ready_after=5)
    cast = connect(cast_tx, sandbox, wait=False)
    deployment = start_slow_rollout(cast, sandbox, run_jobs, "undo")
    assert cluster_image(sandbox) == f"{REPO}:1.0.0"
    assert not sandbox.deployment("dev", NAME)["spec"].get("paused")
    assert deployment.events.filter(kind="cluster", message=f"Restored {REPO}:1.0.0 on dev/storefront.").exists()
    assert deployment.followup == ""
    # The controller adopts the old ReplicaSet again: revision 1 comes back as 3, as after kubectl's undo.
    sandbox.wait_for(lambda c: revision(sandbox) == "3", timeout=30)


# ------------------------------------------------------------------------------ drift and health


def test_it_flags_drift_when_someone_changes_the_image_behind_the_portals_back(
    kube_cast, kube, watcher, run_jobs, client
):
    deployment = deploy(kube_cast, "1.1.0")
    run_jobs()
    wait_state(deployment, states.SUCCEEDED)
    client.force_login(kube_cast.alice)
    assert 'class="drift" data-role="drift" hidden' in client.get("/").content.decode()

    apps_api(kube).patch_namespaced_deployment(
        NAME, "dev", {"spec": {"template": {"spec": {"containers": [{"name": NAME, "image": f"{REPO}:hotfix"}]}}}}
    )
    workload = wait_until(
        lambda: Workload.objects.filter(environment=kube_cast.dev, name=NAME, image=f"{REPO}:hotfix").first()
    )
    assert workload.drifted
    assert workload.expected_image == f"{REPO}:1.1.0"
    html = client.get("/").content.decode()
    assert (
        f'class="drift" data-role="drift">⚠ drift: cluster runs <span class="mono" data-role="image">{REPO}:hotfix'
        in html
    )
    service_page = client.get(f"/services/{kube_cast.service.slug}/").content.decode()
    assert f'⚠ drift: cluster runs <span class="mono">{REPO}:hotfix</span>' in service_page


def test_it_reports_the_watcher_beating_then_stopped_while_staying_ready(kube_cast, watcher, client):
    wait_until(lambda: WatcherHeartbeat.objects.filter(name="test-watcher").exists())
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["watcher"]["ok"] is True
    assert response.json()["watcher"]["streams"] == 9  # 3 namespaces × 3 kinds

    watcher.shutdown()
    WatcherHeartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=5))
    response = client.get("/readyz")
    assert response.status_code == 200  # a web process does not need the watcher to serve
    assert response.json()["watcher"]["ok"] is False


# ------------------------------------------------------------------------------ jenkins deploy jobs


def test_it_deploys_through_a_jenkins_job_that_patches_the_cluster(kube_cast, kube, watcher, run_jobs, settings):
    from sandbox.jenkins import start as start_jenkins

    jenkins = start_jenkins(kube_url=kube.url, queue_seconds=0.1, build_seconds=0.3, seed={"jobs": {"deploy/dev": {}}})
    try:
        settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = jenkins.url, jenkins.user, jenkins.token
        settings.JENKINS_POLL_SECONDS = 0.02
        cast = kube_cast
        cast.dev.deploy_via, cast.dev.jenkins_deploy_job = cast.dev.JENKINS, "deploy/dev"
        cast.dev.save()
        deployment = deploy(cast, "1.1.0")

        deployment = wait_state(deployment, states.SUCCEEDED, run_jobs=run_jobs)
        run_jobs()  # the follower reads the rest of the job's log after the rollout ended

        assert cluster_image(kube) == f"{REPO}:1.1.0"
        events = list(deployment.events.order_by("seq"))
        transitions = [e.data["to"] for e in events if e.kind == "state"]
        assert transitions == [states.APPROVED, states.BUILDING, states.ROLLING_OUT, states.SUCCEEDED]
        assert any("kubectl set image deployment/storefront" in e.message for e in events if e.kind == "log"), [
            (e.seq, e.kind, e.message[:80]) for e in events
        ]
        assert deployment.jenkins_build_number == 1
    finally:
        jenkins.stop()
