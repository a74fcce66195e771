"""Reporting portal deployments back to GitHub as Deployments with statuses (releases.reporting)."""

import django_rq
import pytest
from rq import SimpleWorker

from releases import reporting, states
from releases.models import Deployment
from tests.factories import make_deployment, make_release
from tests.support import GITHUB_REPO as REPO
from tests.support import discard_jobs


@pytest.fixture
def queue():
    queue = django_rq.get_queue("default")
    for job_id in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(job_id, delete_job=True)
    return queue


@pytest.fixture
def deployment(cast_tx, github_sandbox, repo_shas, queue):
    cast_tx.service.github_repo = REPO
    cast_tx.service.save()
    release = make_release(cast_tx.service, version="2.0.0", git_sha=repo_shas[7])
    return make_deployment(release, cast_tx.prod)


def move(deployment, *path):
    for new in path:
        deployment.transition(new, kind="state", message=f"to {new}")
    # The states are driven by hand here: the run job an approval rings has nothing to do.
    discard_jobs("releases.jobs.run_deployment")
    return deployment


def run_all(run_jobs, queue):
    """Run queued jobs; jobs rq scheduled for a retry later are run now, as the scheduler would."""
    run_jobs()


def test_it_creates_a_github_deployment_when_approved(deployment, github_sandbox, repo_shas, run_jobs, queue):
    move(deployment, states.APPROVED)
    run_all(run_jobs, queue)
    (made,) = github_sandbox.deployments
    assert (made["sha"], made["environment"], made["production_environment"]) == (repo_shas[7], "prod", True)
    assert made["payload"]["pampam_deployment_id"] == deployment.pk
    (status,) = github_sandbox.deployment_statuses
    assert status["state"] == "queued"
    assert status["target_url"] == f"http://127.0.0.1:8000/deployments/{deployment.pk}/"
    deployment.refresh_from_db()
    assert deployment.github_deployment_id == made["id"]


def test_it_reports_each_state_once_in_order(deployment, github_sandbox, run_jobs, queue):
    for new in (states.APPROVED, states.ROLLING_OUT, states.SUCCEEDED):
        move(deployment, new)
        run_all(run_jobs, queue)
    reporting.report_to_github(deployment.pk)  # a redelivered doorbell changes nothing
    assert [s["state"] for s in github_sandbox.deployment_statuses] == ["queued", "in_progress", "success"]
    assert len(github_sandbox.deployments) == 1
    deployment.refresh_from_db()
    assert deployment.reports["github"]["sent"] == ["queued", "in_progress", "success"]
    assert deployment.reports["github"]["error"] == ""


def test_it_reports_the_current_state_when_a_job_runs_late(deployment, github_sandbox, run_jobs, queue):
    move(deployment, states.APPROVED, states.ROLLING_OUT, states.FAILED)
    run_all(run_jobs, queue)
    # Three doorbells, one GitHub Deployment, and only the state it ended in: never an old one after it.
    assert [s["state"] for s in github_sandbox.deployment_statuses] == ["failure"]


def test_it_marks_a_cancelled_deployment_inactive(deployment, github_sandbox, run_jobs, queue):
    move(deployment, states.APPROVED)
    run_all(run_jobs, queue)
    move(deployment, states.CANCELLED)
    run_all(run_jobs, queue)
    assert [s["state"] for s in github_sandbox.deployment_statuses] == ["queued", "inactive"]


def test_it_tells_github_nothing_about_a_rejected_request(deployment, github_sandbox, run_jobs, queue):
    move(deployment, states.REJECTED)
    run_all(run_jobs, queue)
    assert github_sandbox.deployments == []


def test_it_retries_with_backoff_until_github_answers(deployment, github_sandbox, run_jobs, queue):
    github_sandbox.set_fault(500, count=2)
    move(deployment, states.APPROVED)
    SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)
    # The first attempt failed and rq scheduled the retry for later (backoff), not at once.
    assert len(queue.scheduled_job_registry.get_job_ids()) == 1
    deployment.refresh_from_db()
    assert deployment.reports["github"]["retrying"] is True
    assert "500" in deployment.reports["github"]["error"]
    run_all(run_jobs, queue)
    assert [s["state"] for s in github_sandbox.deployment_statuses] == ["queued"]
    assert len(github_sandbox.deployments) == 1
    deployment.refresh_from_db()
    assert deployment.state == states.APPROVED  # reporting never moves the deployment
    assert deployment.reports["github"]["error"] == ""


def test_it_shows_a_report_that_failed_without_failing_the_deployment(
    client,
    deployment,
    github_sandbox,
    run_jobs,
    queue,
):
    # A sha GitHub does not know (say, a build of an unpushed commit): a permanent 422.
    release = make_release(deployment.service, version="2.0.1", git_sha="f" * 40)
    deployment = make_deployment(release, deployment.environment.previous())
    move(deployment, states.APPROVED, states.ROLLING_OUT)
    run_all(run_jobs, queue)
    deployment.refresh_from_db()
    assert deployment.state == states.ROLLING_OUT
    assert "422" in deployment.reports["github"]["error"]
    assert deployment.events.filter(kind="report", message__startswith="GitHub: could not report").exists()
    client.force_login(deployment.requested_by or _anyone())
    html = client.get(deployment.get_absolute_url()).content.decode()
    assert "GitHub: could not report in_progress: GitHub answered 422" in html


def test_the_page_says_what_was_reported(client, deployment, github_sandbox, run_jobs, queue):
    move(deployment, states.APPROVED, states.ROLLING_OUT, states.SUCCEEDED)
    run_all(run_jobs, queue)
    client.force_login(_anyone())
    assert "GitHub: reported success" in client.get(deployment.get_absolute_url()).content.decode()


def test_it_skips_services_without_a_repository(deployment, github_sandbox, queue, run_jobs):
    deployment.service.github_repo = ""
    deployment.service.save()
    move(deployment, states.APPROVED)
    assert not any(j.func_name.endswith("report_to_github") for j in queue.get_jobs())
    run_all(run_jobs, queue)
    assert github_sandbox.deployments == []
    assert Deployment.objects.get(pk=deployment.pk).reports == {}


def test_it_skips_a_portal_without_github(deployment, github_sandbox, queue, run_jobs, settings):
    settings.GITHUB_API_URL = ""
    move(deployment, states.APPROVED)
    assert not any(j.func_name.endswith("report_to_github") for j in queue.get_jobs())
    run_all(run_jobs, queue)
    assert github_sandbox.deployments == []


def _anyone():
    from django.contrib.auth.models import User

    return User.objects.get(username="erin")
