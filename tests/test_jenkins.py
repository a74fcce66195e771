"""Builds and deploy jobs through the real python-jenkins client against the Jenkins sandbox.

Jobs run as the worker runs them (`run_jobs`: rq's SimpleWorker, with polls and retries brought
forward), or step by step where a test plays a crash between two steps.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from clusters import rollout
from plumbing.integrations import jenkins as jenkins_client
from releases import builds, deploy_jobs, jobs, states, tracking
from releases.models import Build, BuildEvent, Deployment, Entry, Release
from releases.reconcile import reconcile
from tests.factories import make_deployment, make_release
from tests.support.jenkins import builds_storefront, jenkins_for

# Jobs exist in the sandbox Jenkins only when seeded (or created), as in a real one.
SEED = {
    "jobs": {
        "storefront-build": {},
        "folder/storefront": {},
        "deploy-web": {},
        "deploy-broken": {"result": "FAILURE"},
        "deploy-slow": {"duration": 3},
    }
}


@pytest.fixture
def sandbox(settings):
    with jenkins_for(settings, SEED) as handle:
        yield handle


@pytest.fixture
def service(cast_tx):
    return builds_storefront(cast_tx.service)


def make_build(cast, service, **extra):
    build = builds.request_build(cast.alice, service)
    Build.objects.filter(pk=build.pk).update(parameters={**build.parameters, **extra})
    return build


def run(build, run_jobs):
    """What the worker does with a requested build: trigger it, follow it to its end."""
    run_jobs(until=lambda: Build.objects.get(pk=build.pk).state in states.BUILD_FINAL)
    run_jobs()  # and what its end queued (its test report, reports to GitHub)
    build.refresh_from_db()
    return build


def log_lines(build):
    return list(BuildEvent.objects.filter(build=build, kind="log").order_by("seq").values_list("message", flat=True))


def kinds(build):
    return list(BuildEvent.objects.filter(build=build).exclude(kind="log").values_list("kind", flat=True))


def step_until(step, predicate=None, limit=2000):
    """Run one following step at a time (no queue) until `predicate()` holds, or until the step
    says there is nothing left to follow when no predicate is given."""
    for _ in range(limit):
        if predicate is not None and predicate():
            return
        if step():
            break
        time.sleep(0.02)
    assert predicate is None or predicate()


# -- builds -----------------------------------------------------------------------------------


def test_it_turns_a_successful_build_into_a_release(cast_tx, service, sandbox, client, run_jobs):
    client.force_login(cast_tx.alice)
    response = client.post(f"/services/{service.slug}/build/", {"ref": "release/1.4", "version": "1.4.2"})
    build = Build.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/builds/{build.pk}/"
    build = run(build, run_jobs)
    assert build.state == states.BUILD_SUCCEEDED
    assert build.result == "SUCCESS"
    release = Release.objects.get(service=service)
    assert (release.version, release.image, release.source) == ("1.4.2", "registry.example/storefront:1.4.2", "jenkins")
    assert release.test_summary == {
        "total": 42,
        "failed": 0,
        "skipped": 0,
        "passed": 42,
        "failed_tests": [],
        "build": build.number,
        "source": "junit",
    }
    assert release.jenkins_build_url == build.url
    assert build.release == release
    sent = sandbox.get_build("storefront-build", build.number).params
    assert sent == {
        "SERVICE": "storefront",
        "GIT_REF": "release/1.4",
        "VERSION": "1.4.2",
        "PORTAL_BUILD_ID": str(build.pk),
    }
    assert log_lines(build) == sandbox.console("storefront-build", build.number).splitlines()
    seqs = list(build.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, build.last_seq + 1))


def test_it_proposes_a_version_when_none_is_given(cast_tx, service, sandbox, run_jobs):
    build = run(builds.request_build(cast_tx.alice, service), run_jobs)
    assert build.version.endswith(f"-{build.pk}")
    assert Release.objects.get().version == build.version


def test_it_follows_a_build_in_a_folder_through_the_worker(cast_tx, sandbox, run_jobs):
    service = cast_tx.service
    service.jenkins_build_job = "folder/storefront"
    service.save()
    build = run(builds.request_build(cast_tx.alice, service, version="2.0.0"), run_jobs)
    assert build.state == states.BUILD_SUCCEEDED
    assert build.number == 1
    assert Release.objects.get().version == "2.0.0"
    assert kinds(build)[:3] == ["requested", "queued", "started"]


def test_it_fails_a_build_of_a_job_jenkins_does_not_have_and_shows_why(cast_tx, service, sandbox, client, run_jobs):
    service.jenkins_build_job = "storefront-biuld"  # a typo: Jenkins answers 404, nothing is queued
    service.save()
    build = run(make_build(cast_tx, service), run_jobs)
    assert build.state == states.BUILD_FAILED
    assert "Jenkins has no such item (starting job storefront-biuld: 404)" in build.reason
    assert sandbox.builds() == []
    client.force_login(cast_tx.alice)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert "Jenkins has no such item (starting job storefront-biuld: 404)" in page


def test_it_fails_a_failed_build_with_the_log_tail_and_makes_no_release(cast_tx, service, sandbox, run_jobs):
    build = run(make_build(cast_tx, service, SANDBOX_RESULT="FAILURE"), run_jobs)
    assert build.state == states.BUILD_FAILED
    assert build.result == "FAILURE"
    assert "failed. Last lines of its log" in build.reason
    assert "make: *** [Makefile:12: test] Error 1" in build.reason
    assert not Release.objects.exists()


def test_it_treats_an_unstable_build_as_failed(cast_tx, service, sandbox, run_jobs):
    build = run(make_build(cast_tx, service, SANDBOX_RESULT="UNSTABLE"), run_jobs)
    assert build.state == states.BUILD_FAILED
    assert build.result == "UNSTABLE"
    assert build.reason == (
        f"Jenkins marked #{build.number} UNSTABLE (2 of 42 tests failed): an unstable build does not become a release."
    )
    assert not Release.objects.exists()


def test_it_records_a_build_aborted_in_jenkins(cast_tx, service, sandbox, run_jobs):
    build = run(make_build(cast_tx, service, SANDBOX_RESULT="ABORTED"), run_jobs)
    assert build.state == states.BUILD_ABORTED
    assert build.reason == f"#{build.number} was aborted in Jenkins."
    assert not Release.objects.exists()


def test_it_ends_a_build_whose_queue_item_was_cancelled(cast_tx, service, sandbox, run_jobs):
    build = run(make_build(cast_tx, service, SANDBOX_CANCEL_QUEUE="1"), run_jobs)
    assert build.state == states.BUILD_CANCELLED
    assert build.number is None
    assert build.reason == "The Jenkins queue item was cancelled before the build started."


def test_it_retries_with_backoff_when_jenkins_answers_500_and_recovers(cast_tx, service, sandbox, run_jobs):
    build = make_build(cast_tx, service)
    sandbox.set_fault(status=500, count=2)
    build = run(build, run_jobs)
    assert build.state == states.BUILD_SUCCEEDED
    retries = list(BuildEvent.objects.filter(build=build, kind="retry").values_list("message", flat=True))
    assert retries  # said once per job, not once per attempt
    assert "Jenkins answered 500" in retries[0]
    assert "Retrying with backoff" in retries[0]
    assert Release.objects.count() == 1
    assert len(sandbox.builds("storefront-build")) == 1  # a retried trigger never builds twice


def test_it_ends_at_once_when_jenkins_refuses_the_credentials(cast_tx, service, sandbox, settings, run_jobs):
    settings.JENKINS_TOKEN = "wrong-token"
    build = run(make_build(cast_tx, service), run_jobs)
    assert build.state == states.BUILD_FAILED
    assert "Jenkins refused the credentials (401)" in build.reason
    assert "wrong-token" not in build.reason
    assert "retry" not in kinds(build)


def test_it_gives_up_after_the_retries_when_jenkins_stays_down(cast_tx, service, sandbox, run_jobs):
    sandbox.set_fault(down=True)
    build = run(make_build(cast_tx, service), run_jobs)
    assert build.state == states.BUILD_FAILED
    assert build.reason.startswith(f"Jenkins cannot be reached at {sandbox.url}")
    assert kinds(build).count("retry") == 1
    assert kinds(build).count("state") == 1  # failed once, after the last retry


def test_it_ends_following_a_build_jenkins_does_not_know(cast_tx, service, sandbox, run_jobs):
    build = Build.objects.create(service=service, job_name="storefront-build", queue_id=1, number=99, state="running")
    builds.follow_build(build.pk)
    build.refresh_from_db()
    assert build.state == states.BUILD_FAILED
    assert build.reason == "Jenkins has no such item (reading the log of storefront-build #99: 404)."


def test_it_finds_the_build_it_asked_for_before_a_crash_instead_of_starting_another(
    cast_tx, service, sandbox, run_jobs
):
    build = make_build(cast_tx, service)
    # A worker asked Jenkins, then died before it could write the queue item down.
    Build.objects.filter(pk=build.pk).update(asked_at=timezone.now())
    jenkins_client.start_job("storefront-build", build.parameters)
    build = run(build, run_jobs)
    assert build.state == states.BUILD_SUCCEEDED
    assert len(sandbox.builds("storefront-build")) == 1
    assert "Found the storefront-build run asked for earlier" in " ".join(
        build.events.values_list("message", flat=True)
    )


def test_it_resumes_after_a_killed_worker_without_duplicate_lines(cast_tx, service, sandbox, monkeypatch):
    build = make_build(cast_tx, service, SANDBOX_LOG_LINES="300", SANDBOX_DURATION="1.5")
    builds.trigger_build(build.pk)
    step_until(lambda: builds.follow_build_step(build.pk), lambda: len(log_lines(build)) > 0)
    build.refresh_from_db()
    assert build.state == states.BUILD_RUNNING
    assert build.log_offset > 0

    # The worker dies while storing the next chunk: its transaction never commits.
    real = BuildEvent.objects.bulk_create

    def crash(objs, *args, **kwargs):
        if any(o.kind == "log" for o in objs):
            raise SystemExit("worker killed")
        return real(objs, *args, **kwargs)

    monkeypatch.setattr(BuildEvent.objects, "bulk_create", crash)
    with pytest.raises(SystemExit):
        step_until(lambda: builds.follow_build_step(build.pk), lambda: False, limit=100)
    monkeypatch.setattr(BuildEvent.objects, "bulk_create", real)
    jenkins_client._clients.clear()  # a new worker process starts with nothing in memory

    step_until(lambda: builds.follow_build_step(build.pk), lambda: not Build.objects.get(pk=build.pk).is_active)
    build.refresh_from_db()
    assert build.state == states.BUILD_SUCCEEDED
    assert log_lines(build) == sandbox.console("storefront-build", build.number).splitlines()
    seqs = list(BuildEvent.objects.filter(build=build).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, build.last_seq + 1))


def test_it_refuses_to_store_a_chunk_someone_else_stored(cast):
    build = Build.objects.create(service=cast.service, job_name="x", log_offset=10)
    assert build.append([Entry("log", "late line")], where={"log_offset": 0}, log_offset=20) is None
    build.refresh_from_db()
    assert build.log_offset == 10
    assert not build.events.exists()


def test_it_aborts_a_running_build_from_its_page(cast_tx, service, sandbox, client, run_jobs):
    build = make_build(cast_tx, service, SANDBOX_DURATION="5")
    run_jobs(until=lambda: Build.objects.get(pk=build.pk).number)
    client.force_login(cast_tx.alice)
    page = client.get(f"/builds/{build.pk}/")
    assert page.status_code == 200
    assert b"Abort build" in page.content
    response = client.post(f"/builds/{build.pk}/abort/")
    assert response.status_code == 302
    build = run(build, run_jobs)
    assert build.state == states.BUILD_ABORTED
    assert sandbox.get_build("storefront-build", build.number).aborted_by == "jenkins"
    assert "alice asked Jenkins to stop the build." in build.events.values_list("message", flat=True)


def test_it_refuses_builds_and_aborts_to_non_deployers(cast, client):
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    client.force_login(cast.erin)
    response = client.post(f"/services/{cast.service.slug}/build/")
    assert response.status_code == 403
    assert b"Only deployers" in response.content
    assert not Build.objects.exists()
    build = Build.objects.create(service=cast.service, job_name="storefront-build", state="running", number=3)
    assert client.post(f"/builds/{build.pk}/abort/").status_code == 403


def test_it_answers_400_to_a_bad_version(cast, client):
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    client.force_login(cast.alice)
    response = client.post(f"/services/{cast.service.slug}/build/", {"version": "1.0 ; rm -rf"})
    assert response.status_code == 400
    assert not Build.objects.exists()


def test_it_shows_the_build_button_on_the_service_page(cast, client):
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    client.force_login(cast.alice)
    assert b'id="build-form"' in client.get(f"/services/{cast.service.slug}/").content
    client.force_login(cast.erin)
    assert b'id="build-form"' not in client.get(f"/services/{cast.service.slug}/").content


def test_it_reconciles_builds_nobody_follows(cast_tx):
    import django_rq

    old = timezone.now() - timedelta(minutes=10)
    stale = Build.objects.create(job_name="a", queue_id=4, state="running", created_at=old)
    Build.objects.create(job_name="b", queue_id=5, state="running")  # fresh: being followed
    Build.objects.create(job_name="c", queue_id=6, state="succeeded", created_at=old)
    assert reconcile()["builds"] == 1
    queued = django_rq.get_queue("default").jobs
    assert [(j.func_name, j.args) for j in queued] == [("releases.builds.follow_build", (stale.pk,))]
    assert reconcile()["builds"] == 1
    assert len(django_rq.get_queue("default").jobs) == 1  # not rung again while it waits


# -- deploy jobs ------------------------------------------------------------------------------


@pytest.fixture
def jenkins_dev(cast_tx, kube):
    """Dev deploys through the Jenkins job `deploy-web`; the portal reads the sandbox cluster
    (what runs before each change) while the job itself only logs what it would do."""
    cast_tx.cluster.api_url = kube.url
    cast_tx.cluster.save()
    cast_tx.dev.deploy_via = cast_tx.dev.JENKINS
    cast_tx.dev.jenkins_deploy_job = "deploy-web"
    cast_tx.dev.save()
    return cast_tx.dev


def approved(cast, env):
    release = make_release(cast.service, version="3.1.0")
    return make_deployment(release, env, state=states.APPROVED)


def follow_deploy_job(deployment):
    step_until(lambda: deploy_jobs.step(deployment.pk))
    deployment.refresh_from_db()
    return deployment


def test_it_runs_the_deploy_job_and_waits_for_the_cluster(cast_tx, jenkins_dev, sandbox):
    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.BUILDING
    assert deployment.jenkins_queue_id
    deployment = follow_deploy_job(deployment)
    assert deployment.state == states.BUILDING
    assert deployment.jenkins_build_number == 1
    params = sandbox.get_build("deploy-web", 1).params
    assert params == {
        "SERVICE": "storefront",
        "VERSION": "3.1.0",
        "IMAGE": "registry.example/storefront:3.1.0",
        "ENVIRONMENT": "dev",
        "NAMESPACE": "dev",
        "DEPLOYMENT_ID": str(deployment.pk),
        "PORTAL_URL": "http://127.0.0.1:8000",
        "DEPLOYMENT": "storefront",
        "CONTAINER": "storefront",
    }
    logged = list(deployment.events.filter(kind="log").order_by("seq").values_list("message", flat=True))
    assert logged == sandbox.console("deploy-web", 1).splitlines()
    assert "+ kubectl set image deployment/storefront storefront=registry.example/storefront:3.1.0 -n dev" in logged

    image = deployment.release.image
    seen = rollout.Progress(
        status=rollout.PROGRESSING, message="1 of 3 updated", image=image, images={"storefront": image}
    )
    tracking.advance(deployment, seen)
    deployment.refresh_from_db()
    assert deployment.state == states.ROLLING_OUT


def test_it_writes_a_deploy_jobs_log_a_chunk_at_a_time(cast_tx, jenkins_dev, sandbox):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    started = lambda: Deployment.objects.get(pk=deployment.pk).jenkins_build_number  # noqa: E731
    step_until(lambda: deploy_jobs.step(deployment.pk), started)
    sandbox.wait_for_build("deploy-web", 1)
    with CaptureQueriesContext(connection) as queries:
        deploy_jobs.step(deployment.pk)
    lines = len(sandbox.console("deploy-web", 1).splitlines())
    assert lines > 10
    assert deployment.events.filter(kind="log").count() == lines
    inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "releases_deploymentevent"')]
    assert len(inserts) <= 2  # the chunk's lines in one statement, and the "succeeded" note


def test_it_fails_the_deployment_when_the_deploy_job_fails(cast_tx, jenkins_dev, sandbox):
    jenkins_dev.jenkins_deploy_job = "deploy-broken"
    jenkins_dev.save()
    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment = follow_deploy_job(deployment)
    assert deployment.state == states.FAILED
    assert deployment.reason.startswith("Jenkins job deploy-broken #1 ended FAILURE. Last lines of its log:\n")
    assert "make: *** [Makefile:12: test] Error 1" in deployment.reason
    assert deployment.reason.endswith("Finished: FAILURE")


def test_it_finds_the_deploy_job_it_asked_for_before_a_crash_instead_of_starting_another(cast_tx, jenkins_dev, sandbox):
    deployment = approved(cast_tx, jenkins_dev)
    # A worker asked Jenkins, then died before it could write the queue item down.
    Deployment.objects.filter(pk=deployment.pk).update(jenkins_asked_at=timezone.now())
    jenkins_client.start_job("deploy-web", deploy_jobs.parameters(deployment))
    jobs.run_deployment(deployment.pk)
    deployment = follow_deploy_job(deployment)
    assert deployment.state == states.BUILDING
    assert len(sandbox.builds("deploy-web")) == 1
    assert deployment.events.filter(message__startswith="Found the deploy-web run asked for earlier").exists()


def test_it_aborts_the_deploy_job_from_the_deployment_page(cast_tx, jenkins_dev, sandbox, client):
    jenkins_dev.jenkins_deploy_job = "deploy-slow"
    jenkins_dev.save()
    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    step_until(
        lambda: deploy_jobs.step(deployment.pk),
        lambda: Deployment.objects.get(pk=deployment.pk).jenkins_build_number,
    )
    client.force_login(cast_tx.alice)
    assert b"Abort deploy job" in client.get(f"/deployments/{deployment.pk}/").content
    assert client.post(f"/deployments/{deployment.pk}/abort-job/").status_code == 302
    deployment = follow_deploy_job(deployment)
    assert deployment.state == states.FAILED
    assert deployment.reason.startswith("Jenkins job deploy-slow #1 ended ABORTED.")
    assert "Aborted by jenkins" in deployment.reason


def test_it_refuses_to_abort_a_deploy_job_for_a_non_deployer(cast_tx, jenkins_dev, client):
    deployment = approved(cast_tx, jenkins_dev)
    Deployment.objects.filter(pk=deployment.pk).update(state=states.BUILDING, jenkins_queue_id=3)
    client.force_login(cast_tx.erin)
    response = client.post(f"/deployments/{deployment.pk}/abort-job/")
    assert response.status_code == 403
    assert b"not a deployer for Dev" in response.content


def test_it_fails_a_deployment_whose_image_the_cluster_never_ran(cast_tx, jenkins_dev, sandbox):
    jenkins_dev.progress_deadline_seconds = 10
    jenkins_dev.save()
    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    follow_deploy_job(deployment)
    Deployment.objects.filter(pk=deployment.pk).update(started_at=timezone.now() - timedelta(seconds=81))
    deploy_jobs.overdue(timezone.now())
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert deployment.reason == (
        "The Jenkins job succeeded but the cluster never ran registry.example/storefront:3.1.0 within 80s."
    )


def test_it_retries_starting_the_deploy_job_then_fails_when_jenkins_is_down(cast_tx, jenkins_dev, sandbox, run_jobs):
    sandbox.set_fault(down=True)
    deployment = approved(cast_tx, jenkins_dev)
    Deployment.objects.filter(pk=deployment.pk).update(state=states.PENDING_APPROVAL)
    deployment.refresh_from_db()
    from releases import flows

    flows.approve(deployment, "Approved.")
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert f"Jenkins cannot be reached at {sandbox.url}" in deployment.reason
    assert deployment.events.filter(kind="retry").count() == 1  # said once, retried six times


def test_it_keeps_following_a_deploy_job_whose_image_the_cluster_took_first(cast_tx, jenkins_dev, sandbox):
    """The watcher can see the new image (→ rolling out) before the follower sees the build start:
    the job's log still belongs in the timeline, and nothing is cancelled."""
    deployment = approved(cast_tx, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    deployment.transition(states.ROLLING_OUT, message="The cluster took the new image; rolling out.")
    deployment = follow_deploy_job(deployment)
    assert deployment.state == states.ROLLING_OUT
    logged = list(deployment.events.filter(kind="log").values_list("message", flat=True))
    assert logged == sandbox.console("deploy-web", 1).splitlines()
    assert not sandbox.get_build("deploy-web", 1).aborted_by
