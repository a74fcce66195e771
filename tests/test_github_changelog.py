"""Changelogs between what runs and what is proposed, on the release, deployment and service pages."""

import pytest
from django.utils import timezone

from releases import changelog, states
from releases.models import Commit
from tests.factories import make_deployment, make_release
from tests.support import GITHUB_REPO as REPO


@pytest.fixture
def service(cast, github_sandbox):
    cast.service.github_repo = REPO
    cast.service.save()
    return cast.service


def runs(release, environment, **kwargs):
    return make_deployment(release, environment, state=states.SUCCEEDED, finished_at=timezone.now(), **kwargs)


def page(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_it_lists_the_commits_between_what_runs_and_the_release_oldest_first(service, repo_shas):
    running = make_release(service, git_sha=repo_shas[4])
    proposed = make_release(service, git_sha=repo_shas[9])
    log = changelog.between(REPO, running.git_sha, proposed.git_sha)
    assert log.kind == changelog.COMMITS
    # The base (what runs) is excluded, the head (what is proposed) included.
    assert [c.sha for c in log.commits] == repo_shas[5:10]
    assert log.total == 5


def test_it_is_empty_when_the_commits_are_identical(service, repo_shas, github_sandbox):
    github_sandbox.set_fault(500, count=-1)  # not even asked
    log = changelog.between(REPO, repo_shas[6], repo_shas[6])
    assert (log.kind, log.commits) == (changelog.IDENTICAL, [])


def test_it_shows_the_last_commits_for_a_first_deployment(cast, service, repo_shas):
    release = make_release(service, git_sha=repo_shas[20])
    targets = {t.environment.slug: t for t in changelog.for_release(release)}
    first = targets["dev"].changelog
    assert first.kind == changelog.FIRST
    assert [c.sha for c in first.commits] == repo_shas[21 - changelog.FIRST_DEPLOYMENT_COMMITS : 21]


def test_it_shows_what_goes_away_when_the_release_is_older(service, repo_shas):
    log = changelog.between(REPO, repo_shas[10], repo_shas[7])
    assert log.kind == changelog.BEHIND
    assert [c.sha for c in log.commits] == repo_shas[8:11]


def test_it_compares_per_environment_and_marks_the_next_one(cast, service, repo_shas):
    old = make_release(service, git_sha=repo_shas[2])
    current = make_release(service, git_sha=repo_shas[5])
    runs(old, cast.prod)
    runs(old, cast.staging)
    runs(current, cast.dev)
    targets = {t.environment.slug: t for t in changelog.for_release(current)}
    assert targets["dev"].changelog.kind == changelog.IDENTICAL
    assert [c.sha for c in targets["staging"].changelog.commits] == repo_shas[3:6]
    assert targets["staging"].is_next
    assert not targets["prod"].is_next
    assert not targets["dev"].is_next


def test_it_shows_a_notice_when_github_is_slow(service, repo_shas, github_sandbox, monkeypatch):
    monkeypatch.setattr(changelog, "DEADLINE_SECONDS", 0.3)
    github_sandbox.set_delay(1.5)
    log = changelog.between(REPO, repo_shas[1], repo_shas[3])
    assert log.kind == changelog.UNAVAILABLE
    assert log.notice == "GitHub did not answer in time; the changelog is unavailable."


def test_it_shows_a_notice_when_github_is_down(service, repo_shas, github_sandbox):
    github_sandbox.set_fault(503, count=-1)
    log = changelog.between(REPO, repo_shas[1], repo_shas[3])
    assert log.kind == changelog.UNAVAILABLE
    assert "503" in log.notice


def test_it_caches_by_sha_pair(service, repo_shas, github_sandbox):
    first = changelog.between(REPO, repo_shas[1], repo_shas[3])
    github_sandbox.set_fault(500, count=-1)
    again = changelog.between(REPO, repo_shas[1], repo_shas[3])
    assert [c.sha for c in again.commits] == [c.sha for c in first.commits] == repo_shas[2:4]


def test_it_keeps_a_late_answer_for_the_next_view(service, repo_shas, github_sandbox, monkeypatch):
    monkeypatch.setattr(changelog, "DEADLINE_SECONDS", 0.1)
    github_sandbox.set_delay(0.5)
    assert changelog.between(REPO, repo_shas[1], repo_shas[4]).kind == changelog.UNAVAILABLE
    monkeypatch.setattr(changelog, "DEADLINE_SECONDS", 5)
    # The second view waits on the same fetch (still in flight) instead of starting another one.
    assert [c.sha for c in changelog.between(REPO, repo_shas[1], repo_shas[4]).commits] == repo_shas[2:5]


def test_the_release_page_shows_commits_with_authors_links_and_escaped_messages(
    client,
    cast,
    service,
    github_sandbox,
    repo_shas,
):
    runs(make_release(service, git_sha=repo_shas[-1]), cast.dev)
    (evil,) = github_sandbox.add_commits(REPO, [{"message": "<script>alert(1)</script> Fix cart", "author": "ada"}])
    release = make_release(service, git_sha=evil)
    html = page(client, cast.erin, release.get_absolute_url())
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Fix cart" in html
    assert "<script>alert(1)" not in html
    assert "Ada Lovelace" in html
    assert "@ada" in html
    assert f'href="{github_sandbox.url}/{REPO}/commit/{evil}"' in html
    assert "1 new commit" in html


def test_the_release_page_shows_the_notice_and_still_renders_when_github_is_slow(
    client,
    cast,
    service,
    github_sandbox,
    repo_shas,
    monkeypatch,
):
    monkeypatch.setattr(changelog, "DEADLINE_SECONDS", 0.3)
    github_sandbox.set_delay(1.5)
    release = make_release(service, git_sha=repo_shas[8])
    html = page(client, cast.erin, release.get_absolute_url())
    assert "GitHub did not answer in time; the changelog is unavailable." in html
    assert "Deploy to Dev" in html


def test_the_release_page_says_when_a_release_names_no_commit(client, cast, service):
    release = make_release(service, git_sha="")
    assert "This release names no commit" in page(client, cast.erin, release.get_absolute_url())


def test_the_release_page_has_no_changelog_without_a_repository(client, cast, github_sandbox):
    release = make_release(cast.service)
    assert 'id="changelog"' not in page(client, cast.erin, release.get_absolute_url())


def test_the_deployment_page_shows_the_commits_it_brings(client, cast, service, repo_shas):
    previous = make_release(service, version="1.0.0", git_sha=repo_shas[10])
    release = make_release(service, version="1.1.0", git_sha=repo_shas[12])
    deployment = make_deployment(release, cast.staging, previous_release=previous)
    html = page(client, cast.erin, deployment.get_absolute_url())
    assert "1.0.0 → 1.1.0" in html
    assert f"/commit/{repo_shas[11]}" in html
    assert f"/commit/{repo_shas[12]}" in html
    assert f"/commit/{repo_shas[10]}" not in html


def test_the_service_page_counts_commits_not_yet_in_prod(client, cast, service, repo_shas):
    runs(make_release(service, version="1.0.0", git_sha=repo_shas[20]), cast.prod)
    make_release(service, version="1.1.0", git_sha=repo_shas[24])
    for sha in repo_shas[21:27]:
        Commit.objects.create(service=service, sha=sha, message="pushed")
    html = page(client, cast.erin, service.get_absolute_url())
    assert "6 commits not yet in Prod" in html
    assert "release 1.1.0" in html  # marks where the newest release stops


def test_the_service_page_falls_back_to_the_newest_release(client, cast, service, repo_shas):
    runs(make_release(service, version="1.0.0", git_sha=repo_shas[20]), cast.prod)
    make_release(service, version="1.1.0", git_sha=repo_shas[23])
    assert "3 commits not yet in Prod" in page(client, cast.erin, service.get_absolute_url())
