"""A build's page and the service page follow a Jenkins build without reloads: its number, its
result and the release it made appear as they happen."""

import pytest
from playwright.sync_api import expect

from releases import builds, flows
from sandbox.jenkins import start as start_jenkins
from tests.browser.conftest import in_thread
from tests.factories import make_release, succeed_in
from tests.support.jenkins import builds_storefront, jenkins_for

pytestmark = pytest.mark.browser
WAIT = 30_000


@pytest.fixture
def jenkins(portal, settings):
    seed = {"jobs": {"storefront-build": {"duration": 2}}}
    with jenkins_for(settings, seed, poll_seconds=0.1, queue_seconds=1.0, build_seconds=2.0) as handle:
        yield handle


def storefront_builds(cast):
    return builds_storefront(cast.service)


def test_it_shows_the_build_number_result_and_release_as_they_come(portal, login, jenkins):
    service = in_thread(storefront_builds, portal.cast)
    watcher = login("erin")
    watcher.goto(portal.url + "/services/storefront/")
    watcher.evaluate("() => { window.loadedOnce = true; }")
    build = in_thread(builds.request_build, portal.cast.alice, service, version="3.0.0")
    page = login("erin")
    page.goto(f"{portal.url}/builds/{build.pk}/")
    page.evaluate("() => { window.loadedOnce = true; }")
    expect(page.locator("#build-header h1")).to_contain_text("storefront-build #1", timeout=WAIT)
    expect(page.locator("#state-badge")).to_have_text("Succeeded", timeout=WAIT)
    expect(page.locator("#release a")).to_have_text("3.0.0", timeout=WAIT)
    expect(page.locator("#result")).to_have_text("SUCCESS")
    expect(page.locator("#abort-form")).to_have_count(0)
    numbers = page.locator("#timeline li .seq").all_text_contents()
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]  # 1, 2, 3…: no gaps for the log lines
    assert len(numbers) >= 4
    assert page.evaluate("() => window.loadedOnce") is True
    # The service page, open all along, lists the build and its release.
    expect(watcher.locator("#jenkins-builds")).to_contain_text("release 3.0.0", timeout=WAIT)
    assert watcher.evaluate("() => window.loadedOnce") is True


@pytest.fixture
def jenkins_prod(portal, settings):
    handle = start_jenkins(
        kube_url=portal.kube.url, queue_seconds=0.2, build_seconds=1.0, seed={"jobs": {"deploy/prod": {}}}
    )
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = handle.url, handle.user, handle.token
    settings.JENKINS_POLL_SECONDS = 0.1
    yield handle
    handle.stop()


def prod_through_jenkins(cast):
    cast.prod.deploy_via, cast.prod.jenkins_deploy_job = cast.prod.JENKINS, "deploy/prod"
    cast.prod.save()
    release = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    succeed_in(release, cast.staging)
    return flows.request_deployment(cast.dave, release, cast.prod)


def test_it_follows_the_jenkins_deploy_job_in_its_panel(portal, login, jenkins_prod):
    deployment = in_thread(prod_through_jenkins, portal.cast)
    page = login("erin")
    page.goto(f"{portal.url}/deployments/{deployment.pk}/")
    page.evaluate("() => { window.loadedOnce = true; }")
    panel = page.locator("#jenkins-deploy-job")
    expect(panel).to_contain_text("not started: it starts once the deployment is approved")
    in_thread(flows.decide, portal.cast.bob, deployment, "approve")
    in_thread(flows.decide, portal.cast.carol, deployment, "approve")
    expect(page.locator("#state-badge")).to_have_text("Succeeded", timeout=WAIT)
    expect(panel).to_contain_text("build #1", timeout=WAIT)
    expect(panel).to_contain_text("finished; the cluster took over", timeout=WAIT)
    expect(panel).not_to_contain_text("not started")
    assert page.evaluate("() => window.loadedOnce") is True
