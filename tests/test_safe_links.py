"""Only http(s) URLs become links, whatever was stored before the hooks learned to refuse the rest."""

import pytest
from django.template import Context, Template
from django.test import Client

from plumbing import weblinks
from releases import states
from releases.models import Build
from tests.factories import make_deployment, make_release

EVIL = "javascript:alert(document.cookie)"


def page(user, url) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    "url",
    [EVIL, " javascript:alert(1)", "JAVASCRIPT:alert(1)", "java\tscript:x", "data:text/html,x", "//evil.example"],
)
def test_it_refuses_urls_that_are_not_http(url):
    assert weblinks.http_url(url) == ""


@pytest.mark.parametrize("url", ["http://jenkins.example/job/a/1/", "https://github.com/acme/web/commit/abc"])
def test_it_keeps_http_urls(url):
    assert weblinks.http_url(url) == url


def test_it_renders_the_filter_in_any_template_without_loading_it():
    rendered = Template('<a href="{{ url|http_url }}">').render(Context({"url": EVIL}))
    assert rendered == '<a href="">'


def test_it_shows_no_javascript_link_on_the_release_page(cast):
    release = make_release(cast.service, jenkins_build_url=EVIL)
    body = page(cast.erin, f"/releases/{release.pk}/")
    assert "javascript:" not in body


def test_it_shows_no_javascript_link_on_the_deployment_page(cast):
    cast.dev.deploy_via = cast.dev.JENKINS
    cast.dev.jenkins_deploy_job = "deploy"
    cast.dev.save()
    release = make_release(cast.service, jenkins_build_url=EVIL)
    deployment = make_deployment(
        release, cast.dev, state=states.SUCCEEDED, jenkins_build_url=EVIL, jenkins_build_number=3
    )
    body = page(cast.erin, f"/deployments/{deployment.pk}/")
    assert "javascript:" not in body


def test_it_shows_no_javascript_link_on_the_build_page(cast):
    build = Build.objects.create(service=cast.service, job_name="build", number=3, url=EVIL)
    body = page(cast.erin, f"/builds/{build.pk}/")
    assert "javascript:" not in body


def test_it_still_links_an_http_build_url(cast):
    build = Build.objects.create(service=cast.service, job_name="build", number=3, url="http://jenkins.example/3/")
    assert 'href="http://jenkins.example/3/"' in page(cast.erin, f"/builds/{build.pk}/")
