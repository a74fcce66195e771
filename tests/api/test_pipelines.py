"""The pipeline examples in docs/pipelines/, run as written against a running portal and the
sandbox cluster: the Jenkinsfile's Release and Deploy steps inside the sandbox Jenkins (its `sh`
steps), the GitHub Actions workflow's release job with bash. Each records the release through
the API, asks for a staging deployment, waits while an approver approves with their own token,
and ends as the deployment did.
"""

import os
import threading
import time
from io import StringIO

import jenkins
import pytest
from django.core.management import call_command
from django.db import connections

from releases import states
from releases.api.models import ServiceAccount
from releases.models import Deployment, Release
from tests.support import cli, pipelines
from tests.support.api import token_for
from tests.support.stack import in_thread

WORKFLOW = pipelines.DOCS / "github-actions.yml"


def service_account_token() -> str:
    """What the docs tell an admin to do for a pipeline: a service account and a deploy token."""
    call_command("create_service_account", "jenkins", "--group", "developers", stdout=StringIO())
    out = StringIO()
    call_command("create_api_token", "jenkins", "--scope", "deploy", "--name", "pipeline", stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def staging_without_promotion(stack):
    """Staging takes a release straight from CI (the examples deploy there) and needs one approval."""
    stack.cast.staging.requires_previous = False
    in_thread(stack.cast.staging.save)
    return stack


class Approver:
    """bob, approving every deployment that waits in staging with his own token, as a person would."""

    def __init__(self, stack):
        self.client = token_for(stack.cast.bob, "approve", name="bob-phone")
        self.url = stack.url
        self.stop = threading.Event()
        self.approved: list[int] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while not self.stop.wait(0.2):
                for pk in Deployment.objects.filter(state=states.PENDING_APPROVAL).values_list("pk", flat=True):
                    if cli.run(self.url, self.client, "approve", str(pk), "--comment", "ok").returncode == 0:
                        self.approved.append(pk)
        finally:
            connections.close_all()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def approver(staging_without_promotion):
    approving = in_thread(Approver, staging_without_promotion)
    yield approving
    approving.close()


# Jenkins ----------------------------------------------------------------------------------------


def run_jenkins_pipeline(stack, tmp_path, version):
    from sandbox.jenkins import start

    environment = pipelines.jenkins_environment()
    token = in_thread(service_account_token)
    job = {
        "duration": 0.5,
        "sh": pipelines.jenkins_stage_scripts("Release") + pipelines.jenkins_stage_scripts("Deploy"),
        "env": {
            **environment,
            "PAMPAM_URL": stack.url,  # the Jenkinsfile names the real portal
            "PAMPAM_TOKEN": token,  # credentials('pampam-token')
            "PATH": f"{cli.shim(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        },
    }
    sandbox = start(queue_seconds=0.05, build_seconds=0.5, seed={"jobs": {"storefront/build": job}})
    try:
        server = jenkins.Jenkins(sandbox.url, sandbox.user, sandbox.token, timeout=10)
        server.build_job("storefront/build", {"VERSION": version})
        build = sandbox.wait_for_build("storefront/build", 1, timeout=240)
        return build, sandbox.console("storefront/build", 1), sandbox.url
    finally:
        sandbox.stop()


def test_the_jenkinsfile_records_the_release_and_deploys_it(stack, approver, tmp_path):
    build, console, jenkins_url = run_jenkins_pipeline(stack, tmp_path, "1.1.0")
    assert build.result == "SUCCESS", console
    release = Release.objects.get(version="1.1.0")
    assert release.image == "registry.example/storefront:1.1.0"
    assert release.jenkins_build_url == f"{jenkins_url}/job/storefront/job/build/1/"
    assert len(release.git_sha) == 40
    assert release.created_by.username == "jenkins"
    assert ServiceAccount.objects.filter(user=release.created_by).exists()
    deployment = Deployment.objects.get(environment__slug="staging")
    assert deployment.state == states.SUCCEEDED
    assert approver.approved == [deployment.pk]
    assert f"Deployment #{deployment.pk} succeeded.\n" in console
    assert any("bob approved" in line and "API token bob-phone" in line for line in console.splitlines())


def test_the_jenkinsfile_fails_the_build_when_the_deployment_fails(stack, approver, tmp_path):
    build, console, _ = run_jenkins_pipeline(stack, tmp_path, "1.2.0-crash")
    assert build.result == "FAILURE", console
    deployment = Deployment.objects.get(environment__slug="staging")
    assert deployment.state == states.FAILED
    assert f"Deployment #{deployment.pk} failed." in console
    assert "ERROR: script returned exit code 1\n" in console


# GitHub Actions -------------------------------------------------------------------------------------


def run_workflow(stack, tmp_path, version):
    token = in_thread(service_account_token)
    context = {
        "vars.PAMPAM_URL": stack.url,
        "secrets.PAMPAM_TOKEN": token,
        "needs.build.outputs.version": version,
    }
    github = {
        "GITHUB_SHA": "3f6c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "pampam/storefront",
        "GITHUB_RUN_ID": "4242",
        "PATH": f"{cli.shim(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
    }
    return pipelines.run_actions_job("release", context, path=WORKFLOW, skip={"Install the pampam CLI"}, env=github)


def test_the_workflow_installs_the_cli_from_the_repository():
    step = pipelines.actions_step("release", "Install the pampam CLI", WORKFLOW)
    assert step["run"].startswith('pip install "pampam-cli @ git+')
    assert step["run"].endswith('#subdirectory=cli"')


def test_the_github_workflow_records_the_release_and_deploys_it(stack, approver, tmp_path):
    started = time.monotonic()
    steps = run_workflow(stack, tmp_path, "1.1.0")
    assert [(s.name, s.returncode) for s in steps] == [
        ("Record the release", 0),
        ("Deploy to staging and wait for the outcome", 0),
    ], steps[-1].output
    release = Release.objects.get(version="1.1.0")
    assert release.git_sha == "3f6c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
    assert release.jenkins_build_url == "https://github.example/pampam/storefront/actions/runs/4242"
    deployment = Deployment.objects.get(environment__slug="staging")
    assert deployment.state == states.SUCCEEDED
    assert steps[-1].output.rstrip().endswith(f"Deployment #{deployment.pk} succeeded.")
    assert time.monotonic() - started < 240


def test_the_github_workflow_fails_when_the_deployment_fails(stack, approver, tmp_path):
    steps = run_workflow(stack, tmp_path, "1.2.0-crash")
    assert [(s.name, s.returncode) for s in steps][-1] == ("Deploy to staging and wait for the outcome", 1)
    assert Deployment.objects.get(environment__slug="staging").state == states.FAILED
