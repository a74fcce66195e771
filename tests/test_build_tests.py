"""Test results on every build: the JUnit report read through the Jenkins API (python-jenkins
against the Jenkins sandbox), shown on the build and release pages, and the "requires passing
tests" gate that pages and the API both obey."""

import json

import jenkins
import pytest

from releases import builds, rules, states
from releases.models import Build, Deployment, Release
from tests.factories import make_release
from tests.support import wait_until
from tests.support.api import api_as
from tests.support.hooks import sign
from tests.support.jenkins import builds_storefront, jenkins_for

SEED = {"jobs": {"storefront-build": {}}}


@pytest.fixture
def service(cast_tx, settings):
    """Storefront, built by the storefront-build job of a sandbox Jenkins."""
    with jenkins_for(settings, SEED):
        yield builds_storefront(cast_tx.service)


def built(cast, service, run_jobs, version: str) -> Build:
    build = builds.request_build(cast.alice, service, version=version)
    run_jobs()
    build.refresh_from_db()
    assert build.state == states.BUILD_SUCCEEDED
    return build


def test_it_records_the_failed_tests_of_a_testfail_build_with_their_messages(cast_tx, service, run_jobs):
    build = built(cast_tx, service, run_jobs, "1.5.0-testfail")
    summary = build.test_summary
    assert (summary["total"], summary["passed"], summary["failed"], summary["skipped"]) == (42, 40, 2, 0)
    assert summary["build"] == build.number
    assert summary["failed_tests"] == [
        {
            "name": "tests.test_checkout.CheckoutTest.test_case_1",
            "message": "AssertionError: expected status 200, got 500",
        },
        {
            "name": "tests.test_cart.CartTest.test_case_2",
            "message": "AssertionError: expected 3 items in the cart, got 2",
        },
    ]
    assert Release.objects.get(version="1.5.0-testfail").test_summary == summary
    message = build.events.filter(kind="tests").get().message
    assert message.startswith(f"Tests of #{build.number}: 40 passed, 2 failed, 0 skipped. Failed: ")
    assert "tests.test_checkout.CheckoutTest.test_case_1, tests.test_cart.CartTest.test_case_2." in message


def test_it_shows_the_failed_tests_on_the_build_and_release_pages(cast_tx, service, run_jobs, client):
    build = built(cast_tx, service, run_jobs, "1.5.0-testfail")
    client.force_login(cast_tx.erin)
    for page in (f"/builds/{build.pk}/", f"/releases/{build.release_id}/"):
        body = client.get(page).content.decode()
        assert f"40 passed, 2 failed, 0 skipped of 42 (build #{build.number})" in body
        assert "tests.test_cart.CartTest.test_case_2" in body
        assert "AssertionError: expected 3 items in the cart, got 2" in body
    service_page = client.get(f"/services/{service.slug}/").content.decode()
    assert '40/42 passed <span class="badge tone-bad">2 failed</span>' in service_page


def test_it_records_a_passing_report_of_an_ordinary_build(cast_tx, service, run_jobs):
    build = built(cast_tx, service, run_jobs, "1.5.0")
    assert Release.objects.get(version="1.5.0").test_summary["failed_tests"] == []
    assert (build.test_summary["passed"], build.test_summary["failed"], build.test_summary["source"]) == (
        42,
        0,
        "junit",
    )


def require_tests(environment):
    environment.requires_passing_tests = True
    environment.save()


def test_it_holds_a_testfail_release_back_where_tests_must_pass(cast_tx, service, run_jobs, client):
    build = built(cast_tx, service, run_jobs, "1.5.0-testfail")
    require_tests(cast_tx.dev)
    release = Release.objects.get(pk=build.release_id)
    reason = (
        f"Tests failed on build #{build.number}: 2 of 42 failed. Dev requires passing tests: "
        "fix them and deploy a new release."
    )
    assert rules.can_request(cast_tx.alice, release, cast_tx.dev).reasons == [reason]

    client.force_login(cast_tx.alice)
    assert reason in client.get(f"/releases/{release.pk}/").content.decode()
    response = client.post(f"/releases/{release.pk}/deploy/", {"environment": "dev"})
    assert response.status_code == 403
    assert reason in response.content.decode()

    response = api_as(cast_tx.alice, "deploy").post(
        "/api/v1/deployments/", {"release": release.pk, "environment": "dev"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["reasons"] == [reason]
    assert not Deployment.objects.exists()


def test_it_lets_a_release_whose_tests_passed_through_the_gate(cast_tx, service, run_jobs):
    build = built(cast_tx, service, run_jobs, "1.5.0")
    require_tests(cast_tx.dev)
    assert rules.can_request(cast_tx.alice, Release.objects.get(pk=build.release_id), cast_tx.dev)


def test_it_refuses_a_release_without_test_results_where_tests_must_pass(cast):
    require_tests(cast.dev)
    verdict = rules.can_request(cast.alice, make_release(cast.service, version="1.4.2", test_summary={}), cast.dev)
    assert verdict.reasons == [
        "Storefront 1.4.2 has no test results and Dev requires passing tests. "
        "Build it in Jenkins with a JUnit report, or record its results through the API."
    ]


def test_it_ignores_failed_tests_where_the_environment_does_not_ask(cast):
    release = make_release(cast.service, test_summary={"total": 40, "failed": 2, "passed": 38, "skipped": 0})
    assert rules.can_request(cast.alice, release, cast.dev)


def test_it_says_which_release_failed_when_the_results_came_from_the_api(cast):
    require_tests(cast.dev)
    release = make_release(cast.service, version="2.0.0", test_summary={"total": 10, "failed": 1, "passed": 9})
    assert rules.can_request(cast.alice, release, cast.dev).reasons == [
        "Tests failed on Storefront 2.0.0: 1 of 10 failed. "
        "Dev requires passing tests: fix them and deploy a new release."
    ]


def test_it_reads_the_report_of_a_build_jenkins_reported_through_its_webhook(
    cast_tx, service, run_jobs, client, settings
):
    settings.JENKINS_WEBHOOK_SECRET = "hook-secret"
    server = jenkins.Jenkins(settings.JENKINS_URL, "jenkins", "jenkins-token", timeout=5)
    queue_id = server.build_job("storefront-build", {"VERSION": "2.0.0-testfail"})
    number = wait_until(lambda: (server.get_queue_item(queue_id).get("executable") or {}).get("number"))
    wait_until(lambda: server.get_build_info("storefront-build", number)["result"])
    body = json.dumps(
        {"job": "storefront-build", "number": number, "status": "SUCCESS", "params": {"VERSION": "2.0.0-testfail"}}
    ).encode()
    response = client.post(
        "/hooks/jenkins/", body, content_type="application/json", HTTP_X_PORTAL_SIGNATURE_256=sign(body, "hook-secret")
    )
    assert response.status_code == 200
    run_jobs()
    release = Release.objects.get(version="2.0.0-testfail")
    assert (release.test_summary["failed"], release.test_summary["build"]) == (2, number)
    assert [t["name"] for t in release.test_summary["failed_tests"]] == [
        "tests.test_checkout.CheckoutTest.test_case_1",
        "tests.test_cart.CartTest.test_case_2",
    ]
