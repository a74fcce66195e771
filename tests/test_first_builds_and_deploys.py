"""Releases from the Build button name their commit; a first deployment to a new environment is
refused before it starts when the cluster has nothing to roll out (real clients, sandboxes)."""

import pytest
from django.core.cache import cache

from releases import builds, states
from releases.models import Build, Deployment, Release
from sandbox import github as github_sandbox
from sandbox.kube import start as start_kube
from tests.factories import client_for, make_release, succeed_in
from tests.support.api import api_as
from tests.support.jenkins import jenkins_for

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
    settings.JENKINS_RETRY_DELAYS = (0.02, 0.05)
    with jenkins_for(settings, {"jobs": {"storefront-build": {}}}, poll_seconds=0.02, build_seconds=0.2) as handle:
        yield handle


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
    succeed_in(running, cast.prod)
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


def assert_says_what_to_create_in_prod(text):
    assert "Prod has no Kubernetes Deployment “storefront” in namespace prod of cluster main" in text
    assert "Create a Deployment named “storefront” with a container named “storefront” in prod first" in text


def test_it_refuses_a_first_deploy_where_the_cluster_has_no_deployment_and_says_what_to_create(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    succeed_in(release, cast.staging)
    response = client_for(cast.dave).post(f"/releases/{release.pk}/deploy/", {"environment": "prod"})
    assert response.status_code == 409
    body = response.content.decode()
    assert_says_what_to_create_in_prod(body)
    assert not Deployment.objects.filter(environment=cast.prod).exists()


def test_it_lets_a_deploy_through_where_the_deployment_exists(cast, kube):
    release = make_release(cast.service, version="1.1.0")
    succeed_in(release, cast.dev)
    response = client_for(cast.alice).post(f"/releases/{release.pk}/deploy/", {"environment": "staging"})
    assert response.status_code == 302
    assert Deployment.objects.get(environment=cast.staging).state == states.PENDING_APPROVAL


def request_in_prod_through_the_api(cast, user):
    """`user`'s API request of a new release (it succeeded in staging) in prod."""
    release = make_release(cast.service, version="1.1.0")
    succeed_in(release, cast.staging)
    payload = {"release": release.pk, "environment": "prod"}
    return api_as(user, "deploy").post("/api/v1/deployments/", payload, format="json")


def test_it_refuses_the_same_first_deploy_through_the_api_before_it_starts(cast, kube):
    response = request_in_prod_through_the_api(cast, cast.dave)
    assert response.status_code == 409
    (reason,) = response.json()["reasons"]
    assert_says_what_to_create_in_prod(reason)
    assert not Deployment.objects.filter(environment=cast.prod).exists()


def test_it_gives_the_rules_reasons_first_through_the_api(cast, kube):
    response = request_in_prod_through_the_api(cast, cast.alice)
    assert response.status_code == 403
    assert "Kubernetes Deployment" not in response.content.decode()
