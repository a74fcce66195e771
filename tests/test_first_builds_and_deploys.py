"""Releases from the Build button name their commit; a first deployment to a new environment is
refused before it starts when the cluster has nothing to roll out (real clients, sandboxes)."""

import pytest
from django.core.cache import cache
from django.utils import timezone

from releases import builds, states
from releases.models import Build, Deployment, Release
from sandbox import github as github_sandbox
from sandbox.jenkins import start as start_jenkins
from sandbox.kube import start as start_kube
from tests.factories import client_for, make_deployment, make_release
from tests.support.api import api_as

REPO = "pampam/storefront"
TOKEN = "gh-test-token"


@pytest.fixture
def github(settings):
    handle = github_sandbox.start(token=TOKEN, repos={REPO: 12})
    settings.GITHUB_API_URL = handle.api_url
    settings.GITHUB_TOKEN = TOKEN
    cache.clear()
    yield handle
    handle.stop()
    cache.clear()


@pytest.fixture
def jenkins(settings):
    handle = start_jenkins(
        user="jenkins",
        token="jenkins-token",
        seed={"jobs": {"storefront-build": {}}},
        queue_seconds=0.05,
        build_seconds=0.2,
    )
    settings.JENKINS_URL = handle.url
    settings.JENKINS_USER = "jenkins"
    settings.JENKINS_TOKEN = "jenkins-token"
    settings.JENKINS_POLL_SECONDS = 0.02
    settings.JENKINS_RETRY_DELAYS = (0.02, 0.05)
    yield handle
    handle.stop()


@pytest.fixture
def service(cast):
    cast.service.github_repo = REPO
    cast.service.jenkins_build_job = "storefront-build"
    cast.service.save()
    return cast.service


def finish(build):
    for _ in range(500):
        if builds.follow_build_step(build.pk):
            break
    build.refresh_from_db()
    return build


def test_it_builds_the_commit_main_names_and_the_release_names_it(cast, service, github, jenkins):
    head = github.commits(REPO)[-1]
    response = client_for(cast.alice).post(f"/services/{service.slug}/build/", {"version": "2.0.0"})
    assert response.status_code == 302
    build = Build.objects.get()
    assert build.git_sha == head
    assert build.parameters["GIT_REF"] == head  # Jenkins builds exactly that commit, even if main moves
    builds.trigger_build(build.pk)
    build = finish(build)
    assert build.state == states.BUILD_SUCCEEDED, list(build.events.values_list("message", flat=True))
    release = Release.objects.get(version="2.0.0")
    assert release.git_sha == head
    assert "main at " + head[:7] in build.events.get(kind="requested").message


def test_it_refuses_a_ref_github_does_not_know(cast, service, github, jenkins):
    response = client_for(cast.alice).post(f"/services/{service.slug}/build/", {"ref": "no-such-branch"})
    assert response.status_code == 400
    assert "GitHub knows no commit “no-such-branch” in pampam/storefront" in response.content.decode()
    assert not Build.objects.exists()


def test_it_tells_when_a_newer_release_names_no_commit(cast, service, github):
    shas = github.commits(REPO)
    running = make_release(service, version="1.0.0", git_sha=shas[3])
    make_deployment(running, cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    make_release(service, version="1.1.0", git_sha=shas[3])
    make_release(service, version="2026.12.02-7", git_sha="")
    body = client_for(cast.erin).get(f"/services/{service.slug}/").content.decode()
    assert "is up to date" not in body
    assert "Newer release 2026.12.02-7 names no commit" in body


@pytest.fixture
def kube(cast):
    handle = start_kube(
        port=0,
        ready_after=0.1,
        seed={
            "namespaces": ["dev", "staging", "prod"],
            "deployments": [
                {"namespace": "staging", "name": "storefront", "image": "registry.example/storefront:1.0.0"}
            ],
        },
    )
    cast.cluster.api_url = handle.url
    cast.cluster.save()
    yield handle
    handle.stop()


def test_it_refuses_a_first_deploy_where_the_cluster_has_no_deployment_and_says_what_to_create(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    make_deployment(release, cast.staging, state=states.SUCCEEDED, finished_at=timezone.now())
    response = client_for(cast.dave).post(f"/releases/{release.pk}/deploy/", {"environment": "prod"})
    assert response.status_code == 409
    body = response.content.decode()
    assert "Prod has no Kubernetes Deployment “storefront” in namespace prod of cluster main" in body
    assert "Create a Deployment named “storefront” with a container named “storefront” in prod first" in body
    assert not Deployment.objects.filter(environment=cast.prod).exists()


def test_it_lets_a_deploy_through_where_the_deployment_exists(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    make_deployment(release, cast.dev, state=states.SUCCEEDED, finished_at=timezone.now())
    response = client_for(cast.alice).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert response.status_code == 302
    assert Deployment.objects.get(environment=cast.staging).state == states.PENDING_APPROVAL


def test_it_refuses_the_same_first_deploy_through_the_api_before_it_starts(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    make_deployment(release, cast.staging, state=states.SUCCEEDED, finished_at=timezone.now())
    response = api_as(cast.dave, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "prod"}, format="json"
    )
    assert response.status_code == 409
    (reason,) = response.json()["reasons"]
    assert "Prod has no Kubernetes Deployment “storefront” in namespace prod of cluster main" in reason
    assert "Create a Deployment named “storefront” with a container named “storefront” in prod first" in reason
    assert not Deployment.objects.filter(environment=cast.prod).exists()


def test_it_gives_the_rules_reasons_first_through_the_api(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    make_deployment(release, cast.staging, state=states.SUCCEEDED, finished_at=timezone.now())
    response = api_as(cast.alice, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "prod"}, format="json"
    )
    assert response.status_code == 403
    assert "Kubernetes Deployment" not in response.content.decode()
