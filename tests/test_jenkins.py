"""Builds and deploy jobs through the real python-jenkins client against the Jenkins sandbox."""

import pytest
from django.utils import timezone

from clusters import rollout
from plumbing.integrations import jenkins as jenkins_client
from releases import builds, jobs, states, tracking
from releases.models import Build, BuildEvent, Deployment, Release
from sandbox.jenkins import start
from tests.factories import make_deployment, make_release

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
    handle = start(user="jenkins", token="jenkins-token", seed=SEED, queue_seconds=0.05, build_seconds=0.3)
    settings.JENKINS_URL = handle.url
    settings.JENKINS_USER = "jenkins"
    settings.JENKINS_TOKEN = "jenkins-token"
    settings.JENKINS_POLL_SECONDS = 0.02
    settings.JENKINS_RETRY_DELAYS = (0.02, 0.05, 0.1)
    yield handle
    handle.stop()


@pytest.fixture
def service(cast):
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    return cast.service


def make_build(cast, service, **extra):
    build = builds.request_build(cast.alice, service)
    Build.objects.filter(pk=build.pk).update(parameters={**build.parameters, **extra})
    return build


def run(build):
    builds.trigger_build(build.pk)
    build.refresh_from_db()
    return build


def log_lines(build):
    return list(BuildEvent.objects.filter(build=build, kind="log").order_by("seq").values_list("message", flat=True))


def kinds(build):
    return list(BuildEvent.objects.filter(build=build).exclude(kind="log").values_list("kind", flat=True))


def step_until(step, predicate, limit=500):
    for _ in range(limit):
        if predicate():
            return
        if step():
            break
        import time

        time.sleep(0.02)
    assert predicate()


# -- builds -----------------------------------------------------------------------------------


def test_it_turns_a_successful_build_into_a_release(cast, service, sandbox, client):
    client.force_login(cast.alice)
    response = client.post(f"/services/{service.slug}/build/", {"ref": "release/1.4", "version": "1.4.2"})
    build = Build.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/builds/{build.pk}/"
    build = run(build)
    assert build.state == Build.SUCCEEDED
    assert build.result == "SUCCESS"
    release = Release.objects.get(service=service)
    assert (release.version, release.image, release.source) == ("1.4.2", "registry.example/storefront:1.4.2", "jenkins")
    assert release.test_summary == {"total": 42, "failed": 0, "skipped": 0, "passed": 42}
    assert release.jenkins_build_url == build.url
    assert build.release == release
    sent = sandbox.get_build("storefront-build", build.number).params
    assert sent == {"SERVICE": "storefront", "GIT_REF": "release/1.4", "VERSION": "1.4.2"}
    assert log_lines(build) == sandbox.console("storefront-build", build.number).splitlines()


def test_it_proposes_a_version_when_none_is_given(cast, service, sandbox):
    build = run(builds.request_build(cast.alice, service))
    assert build.version.endswith(f"-{build.pk}")
    assert Release.objects.get().version == build.version


def test_it_follows_a_build_through_the_worker(cast_tx, sandbox, run_jobs):
    service = cast_tx.service
    service.jenkins_build_job = "folder/storefront"
    service.save()
    build = builds.request_build(cast_tx.alice, service, version="2.0.0")
    run_jobs()
    build.refresh_from_db()
    assert build.state == Build.SUCCEEDED
    assert build.number == 1
    assert Release.objects.get().version == "2.0.0"
    assert kinds(build)[:3] == ["requested", "queued", "started"]


def test_it_fails_a_build_of_a_job_jenkins_does_not_have_and_shows_why(cast, service, sandbox, client):
    service.jenkins_build_job = "storefront-biuld"  # a typo: Jenkins answers 404, nothing is queued
    service.save()
    build = run(make_build(cast, service))
    assert build.state == Build.FAILED
    assert "Jenkins has no such item (starting job storefront-biuld: 404)" in build.reason
    assert sandbox.builds() == []
    client.force_login(cast.alice)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert "Jenkins has no such item (starting job storefront-biuld: 404)" in page


def test_it_fails_a_failed_build_with_the_log_tail_and_makes_no_release(cast, service, sandbox):
    build = run(make_build(cast, service, SANDBOX_RESULT="FAILURE"))
    assert build.state == Build.FAILED
    assert build.result == "FAILURE"
    assert "failed. Last lines of its log" in build.reason
    assert "make: *** [Makefile:12: test] Error 1" in build.reason
    assert not Release.objects.exists()


def test_it_treats_an_unstable_build_as_failed(cast, service, sandbox):
    build = run(make_build(cast, service, SANDBOX_RESULT="UNSTABLE"))
    assert build.state == Build.FAILED
    assert build.result == "UNSTABLE"
    assert build.reason == (
        f"Jenkins marked #{build.number} UNSTABLE (2 of 42 tests failed): an unstable build does not become a release."
    )
    assert not Release.objects.exists()


def test_it_records_a_build_aborted_in_jenkins(cast, service, sandbox):
    build = run(make_build(cast, service, SANDBOX_RESULT="ABORTED"))
    assert build.state == Build.ABORTED
    assert build.reason == f"#{build.number} was aborted in Jenkins."
    assert not Release.objects.exists()


def test_it_ends_a_build_whose_queue_item_was_cancelled(cast, service, sandbox):
    build = run(make_build(cast, service, SANDBOX_CANCEL_QUEUE="1"))
    assert build.state == Build.CANCELLED
    assert build.number is None
    assert build.reason == "The Jenkins queue item was cancelled before the build started."


def test_it_retries_when_jenkins_answers_500_and_recovers(cast, service, sandbox):
    build = make_build(cast, service)
    sandbox.set_fault(status=500, count=2)
    build = run(build)
    assert build.state == Build.SUCCEEDED
    retries = BuildEvent.objects.filter(build=build, kind="retry").values_list("message", flat=True)
    assert len(retries) == 2
    assert "Jenkins answered 500" in retries[0]
    assert Release.objects.count() == 1


def test_it_ends_at_once_when_jenkins_refuses_the_credentials(cast, service, sandbox, settings):
    settings.JENKINS_TOKEN = "wrong-token"
    build = run(make_build(cast, service))
    assert build.state == Build.FAILED
    assert "Jenkins refused the credentials (401)" in build.reason
    assert "wrong-token" not in build.reason
    assert "retry" not in kinds(build)


def test_it_gives_up_when_jenkins_stays_down(cast, service, sandbox):
    sandbox.set_fault(down=True)
    build = run(make_build(cast, service))
    assert build.state == Build.FAILED
    assert build.reason.startswith(f"Jenkins cannot be reached at {sandbox.url}")
    assert kinds(build).count("retry") == 3


def test_it_ends_following_a_build_jenkins_does_not_know(cast, service, sandbox):
    build = Build.objects.create(service=service, job_name="storefront-build", queue_id=1, number=99, state="running")
    builds.follow_build(build.pk)
    build.refresh_from_db()
    assert build.state == Build.FAILED
    assert build.reason == "Jenkins has no such item (reading the log of storefront-build #99: 404)."


def test_it_resumes_after_a_killed_worker_without_duplicate_lines(cast, service, sandbox, settings, monkeypatch):
    settings.JENKINS_FOLLOW_SLICE_SECONDS = 0  # one step per job run, like a worker killed between steps
    build = make_build(cast, service, SANDBOX_LOG_LINES="300", SANDBOX_DURATION="1.5")
    builds.trigger_build(build.pk)
    step_until(lambda: builds.follow_build_step(build.pk), lambda: len(log_lines(build)) > 0)
    build.refresh_from_db()
    assert build.state == Build.RUNNING
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

    settings.JENKINS_FOLLOW_SLICE_SECONDS = 60
    builds.follow_build(build.pk)
    build.refresh_from_db()
    assert build.state == Build.SUCCEEDED
    assert log_lines(build) == sandbox.console("storefront-build", build.number).splitlines()
    seqs = list(BuildEvent.objects.filter(build=build).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, build.last_seq + 1))


def test_it_refuses_to_store_a_chunk_someone_else_stored(cast, service):
    build = Build.objects.create(service=service, job_name="x", log_offset=10)
    assert not builds.append(build, [("log", "late line", {})], where={"log_offset": 0}, log_offset=20)
    build.refresh_from_db()
    assert build.log_offset == 10
    assert not build.events.exists()


def test_it_aborts_a_running_build_from_its_page(cast, service, sandbox, settings, client):
    settings.JENKINS_FOLLOW_SLICE_SECONDS = 0
    build = make_build(cast, service, SANDBOX_DURATION="5")
    builds.trigger_build(build.pk)
    step_until(lambda: builds.follow_build_step(build.pk), lambda: Build.objects.get(pk=build.pk).number)
    client.force_login(cast.alice)
    page = client.get(f"/builds/{build.pk}/")
    assert page.status_code == 200
    assert b"Abort build" in page.content
    response = client.post(f"/builds/{build.pk}/abort/")
    assert response.status_code == 302
    settings.JENKINS_FOLLOW_SLICE_SECONDS = 60
    builds.follow_build(build.pk)
    build.refresh_from_db()
    assert build.state == Build.ABORTED
    assert sandbox.get_build("storefront-build", build.number).aborted_by == "jenkins"
    assert "alice asked Jenkins to stop the build." in build.events.values_list("message", flat=True)


def test_it_refuses_builds_and_aborts_to_non_deployers(cast, service, client):
    client.force_login(cast.erin)
    response = client.post(f"/services/{service.slug}/build/")
    assert response.status_code == 403
    assert b"Only deployers" in response.content
    assert not Build.objects.exists()
    build = Build.objects.create(service=service, job_name="storefront-build", state=Build.RUNNING, number=3)
    assert client.post(f"/builds/{build.pk}/abort/").status_code == 403


def test_it_answers_400_to_a_bad_version(cast, service, client):
    client.force_login(cast.alice)
    response = client.post(f"/services/{service.slug}/build/", {"version": "1.0 ; rm -rf"})
    assert response.status_code == 400
    assert not Build.objects.exists()


def test_it_shows_the_build_button_on_the_service_page(cast, service, client):
    client.force_login(cast.alice)
    assert b'id="build-form"' in client.get(f"/services/{service.slug}/").content
    client.force_login(cast.erin)
    assert b'id="build-form"' not in client.get(f"/services/{service.slug}/").content


def test_it_reconciles_builds_nobody_follows(cast_tx):
    import django_rq

    old = timezone.now() - timezone.timedelta(minutes=10)
    stale = Build.objects.create(job_name="a", queue_id=4, state=Build.RUNNING, created_at=old)
    Build.objects.create(job_name="b", queue_id=5, state=Build.RUNNING)  # fresh: being followed
    Build.objects.create(job_name="c", queue_id=6, state=Build.SUCCEEDED, created_at=old)
    counts = builds.reconcile(timezone.now())
    assert counts["builds"] == 1
    queued = django_rq.get_queue("default").jobs
    assert [(j.func_name, j.args) for j in queued] == [("releases.builds.follow_build", (stale.pk,))]


# -- deploy jobs ------------------------------------------------------------------------------


@pytest.fixture
def jenkins_dev(cast):
    cast.dev.deploy_via = cast.dev.JENKINS
    cast.dev.jenkins_deploy_job = "deploy-web"
    cast.dev.save()
    return cast.dev


def approved(cast, env):
    release = make_release(cast.service, version="3.1.0")
    return make_deployment(release, env, state=states.APPROVED)


def test_it_runs_the_deploy_job_and_waits_for_the_cluster(cast, jenkins_dev, sandbox):
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.BUILDING
    assert deployment.jenkins_queue_id
    builds.follow_deploy_job(deployment.pk)
    deployment.refresh_from_db()
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


def test_it_fails_the_deployment_when_the_deploy_job_fails(cast, jenkins_dev, sandbox):
    jenkins_dev.jenkins_deploy_job = "deploy-broken"
    jenkins_dev.save()
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    builds.follow_deploy_job(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert deployment.reason.startswith("Jenkins job deploy-broken #1 ended FAILURE. Last lines of its log:\n")
    assert "make: *** [Makefile:12: test] Error 1" in deployment.reason
    assert deployment.reason.endswith("Finished: FAILURE")


def test_it_aborts_the_deploy_job_from_the_deployment_page(cast, jenkins_dev, sandbox, settings, client):
    jenkins_dev.jenkins_deploy_job = "deploy-slow"
    jenkins_dev.save()
    settings.JENKINS_FOLLOW_SLICE_SECONDS = 0
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    step_until(
        lambda: builds.follow_deploy_step(deployment.pk),
        lambda: Deployment.objects.get(pk=deployment.pk).jenkins_build_number,
    )
    client.force_login(cast.alice)
    assert b"Abort deploy job" in client.get(f"/deployments/{deployment.pk}/").content
    assert client.post(f"/deployments/{deployment.pk}/abort-job/").status_code == 302
    settings.JENKINS_FOLLOW_SLICE_SECONDS = 60
    builds.follow_deploy_job(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert deployment.reason.startswith("Jenkins job deploy-slow #1 ended ABORTED.")
    assert "Aborted by jenkins" in deployment.reason


def test_it_refuses_to_abort_a_deploy_job_for_a_non_deployer(cast, jenkins_dev, client):
    deployment = approved(cast, jenkins_dev)
    Deployment.objects.filter(pk=deployment.pk).update(state=states.BUILDING, jenkins_queue_id=3)
    client.force_login(cast.erin)
    response = client.post(f"/deployments/{deployment.pk}/abort-job/")
    assert response.status_code == 403
    assert b"not a deployer for Dev" in response.content


def test_it_fails_a_deployment_whose_image_the_cluster_never_ran(cast, jenkins_dev, sandbox):
    jenkins_dev.progress_deadline_seconds = 10
    jenkins_dev.save()
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    builds.follow_deploy_job(deployment.pk)
    Deployment.objects.filter(pk=deployment.pk).update(started_at=timezone.now() - timezone.timedelta(seconds=81))
    builds.reconcile(timezone.now())
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert deployment.reason == (
        "The Jenkins job succeeded but the cluster never ran registry.example/storefront:3.1.0 within 80s."
    )


def test_it_fails_a_deployment_when_the_environment_has_no_deploy_job(cast, jenkins_dev, sandbox):
    jenkins_dev.jenkins_deploy_job = ""
    jenkins_dev.save()
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert "has no deploy job set" in deployment.reason


def test_it_retries_starting_the_deploy_job_then_fails_when_jenkins_is_down(cast, jenkins_dev, sandbox):
    sandbox.set_fault(down=True)
    deployment = approved(cast, jenkins_dev)
    jobs.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == states.FAILED
    assert deployment.reason.startswith(f"Jenkins cannot be reached at {sandbox.url}")
    assert deployment.events.filter(kind="retry").count() == 3
