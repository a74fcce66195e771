"""The GitHub sandbox against the real PyGithub, configured as for GitHub Enterprise."""

import json
import urllib.request

import pytest
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    RateLimitExceededException,
    UnknownObjectException,
)

from sandbox.github import start
from sandbox.github.__main__ import parse_args

TOKEN = "ghp_sandbox"


def client(sandbox, token=TOKEN, **options) -> Github:
    # PyGithub throttles writes to one a second by default; the sandbox needs no such care.
    throttle = {"seconds_between_requests": None, "seconds_between_writes": None}
    return Github(base_url=sandbox.api_url, auth=Auth.Token(token), **throttle, **options)


@pytest.fixture(scope="module")
def sandbox():
    seed = {"repos": {"acme/web": {"tags": {"v1.0.0": 4}, "branches": {"release/1.0": 6}}}}
    with start(token=TOKEN, repos={"acme/web": 20, "acme/api": 3}, seed=seed) as handle:
        yield handle


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.clear_faults()


@pytest.fixture
def gh(sandbox):
    # retry=None: injected 5xx faults must surface instead of being retried by urllib3.
    return client(sandbox, retry=None)


@pytest.fixture
def repo(gh):
    return gh.get_repo("acme/web")


def test_repository_fields_and_urls_stay_under_the_base_url(sandbox, repo):
    assert (repo.id, repo.name, repo.full_name) == (repo.id, "web", "acme/web")
    assert repo.owner.login == "acme"
    assert repo.default_branch == "main"
    assert repo.url == f"{sandbox.api_url}/repos/acme/web"
    assert repo.statuses_url.startswith(sandbox.api_url)


def test_commits_are_deterministic_and_paginated(sandbox, repo):
    shas = sandbox.commits("acme/web")
    assert len(shas) == 20
    assert len(set(shas)) == 20
    listed = repo.get_commits()
    assert [c.sha for c in listed] == shas[::-1]  # newest first, as git log
    small = client(sandbox, per_page=3)
    paged = small.get_repo("acme/web").get_commits(sha="v1.0.0")
    assert paged.totalCount == 5  # from the Link rel="last" of a per_page=1 request
    assert [c.sha for c in paged] == shas[4::-1]


def test_get_commit_by_sha_short_sha_branch_and_tag(sandbox, repo):
    shas = sandbox.commits("acme/web")
    commit = repo.get_commit(shas[4][:7])
    assert commit.sha == shas[4]
    assert commit.commit.message
    assert commit.commit.author.name
    assert commit.author.login
    assert [p.sha for p in commit.parents] == [shas[3]]
    assert commit.stats.total == sum(f.changes for f in commit.files) > 0
    assert repo.get_commit("v1.0.0").sha == shas[4]
    assert repo.get_commit("release/1.0").sha == shas[6]
    assert repo.get_commit("main").sha == shas[-1]
    with pytest.raises(GithubException) as error:
        repo.get_commit("no-such-ref").sha
    assert error.value.status == 422


def test_compare_lists_commits_after_base_up_to_head_oldest_first(sandbox, repo):
    shas = sandbox.commits("acme/web")
    comparison = repo.compare(shas[2], "v1.0.0")
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("ahead", 2, 0)
    assert [c.sha for c in comparison.commits] == shas[3:5]
    assert comparison.merge_base_commit.sha == shas[2]
    behind = repo.compare("main", "v1.0.0")
    assert (behind.status, behind.behind_by, behind.total_commits) == ("behind", 15, 0)
    identical = repo.compare("v1.0.0", shas[4][:10])
    assert identical.status == "identical"
    assert list(identical.commits) == []


def test_compare_paginates_across_pages(sandbox, repo):
    shas = sandbox.commits("acme/web")
    comparison = repo.compare(shas[0], "main", comparison_commits_per_page=4)
    assert comparison.total_commits == 19
    assert [c.sha for c in comparison.commits] == shas[1:]


def test_commit_statuses(sandbox, repo):
    commit = repo.get_commit("v1.0.0")
    commit.create_status("pending", "http://pampam/r/1", "Deploying", "pampam/deploy")
    commit.create_status("success", "http://pampam/r/1", "Deployed", "pampam/deploy")
    states = [s.state for s in commit.get_statuses()]
    assert states[:2] == ["success", "pending"]
    assert commit.get_combined_status().state == "success"
    assert sandbox.statuses[-1]["context"] == "pampam/deploy"
    with pytest.raises(GithubException) as error:
        commit.create_status("bogus")
    assert error.value.status == 422


def test_deployment_lifecycle(sandbox, repo):
    sha = sandbox.commits("acme/web")[-1]
    deployment = repo.create_deployment(ref="main", environment="staging", payload={"rev": 7}, required_contexts=[])
    assert (deployment.sha, deployment.ref, deployment.task) == (sha, "main", "deploy")
    for state in ("queued", "in_progress", "success", "failure", "inactive"):
        deployment.create_status(state, environment_url="http://web.staging", description=state)
    assert [s.state for s in deployment.get_statuses()][0] == "inactive"
    assert len(list(deployment.get_statuses())) == 5
    found = repo.get_deployments(sha=sha, environment="staging")
    assert [d.id for d in found] == [deployment.id]
    assert repo.get_deployment(deployment.id).payload == {"rev": 7}
    assert sandbox.deployments[-1]["environment"] == "staging"


def test_successful_deployment_deactivates_older_ones(repo):
    first = repo.create_deployment(ref="v1.0.0", environment="qa", required_contexts=[])
    first.create_status("success")
    second = repo.create_deployment(ref="main", environment="qa", required_contexts=[])
    second.create_status("success")
    assert [s.state for s in first.get_statuses()] == ["inactive", "success"]


def test_deployment_refused_while_required_contexts_fail(repo):
    commit = repo.get_commit("release/1.0")
    commit.create_status("failure", context="ci/tests")
    with pytest.raises(GithubException) as error:
        repo.create_deployment(ref="release/1.0")
    assert error.value.status == 409
    with pytest.raises(GithubException) as error:
        repo.create_deployment(ref="no-such-branch", required_contexts=[])
    assert error.value.status == 422


def test_bad_token_and_unknown_repo(sandbox, gh):
    with pytest.raises(BadCredentialsException):
        client(sandbox, "wrong").get_repo("acme/web")
    with pytest.raises(UnknownObjectException):
        gh.get_repo("acme/nope")


def test_injected_faults(sandbox, gh):
    sandbox.set_fault(status=500, count=1)
    with pytest.raises(GithubException) as error:
        gh.get_repo("acme/web")
    assert error.value.status == 500
    assert gh.get_repo("acme/web").name == "web"
    # With PyGithub's default retry a short outage is absorbed.
    sandbox.set_fault(status=502, count=2)
    assert client(sandbox).get_repo("acme/api").name


def test_faults_over_http_and_delay(sandbox, gh):
    request = urllib.request.Request(
        f"{sandbox.url}/sandbox/faults",
        data=json.dumps({"status": 503, "count": 1, "delay": 0.2}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request) as reply:
        assert json.load(reply)["status"] == 503
    with pytest.raises(GithubException):
        gh.get_repo("acme/web")
    assert sandbox.faults.delay == 0.2


def test_add_commits_and_tags_at_runtime(sandbox):
    new = sandbox.add_commits("acme/api", ["Add healthz", {"message": "Ship it", "author": "ada"}])
    assert sandbox.commits("acme/api")[-2:] == new
    gh = client(sandbox)
    api = gh.get_repo("acme/api")
    assert api.get_commit(new[-1]).commit.message == "Ship it"
    assert api.get_commit(new[-1]).author.login == "ada"
    sandbox.tag("acme/api", "v2", new[0])
    assert [t.name for t in api.get_tags()] == ["v2"]
    assert api.get_branch("main").commit.sha == new[-1]


def test_cli_pairs_repos_with_commit_counts():
    args = parse_args(["--repo", "a/b", "--commits", "5", "--repo", "c/d", "--commits", "7"])
    assert list(zip(args.repo, args.commits)) == [("a/b", 5), ("c/d", 7)]


def test_it_filters_commits_by_since_until_and_path(sandbox, repo):
    commits = list(repo.get_commits())  # newest first
    middle = commits[10].commit.author.date
    recent = list(repo.get_commits(since=middle))
    assert [c.sha for c in recent] == [c.sha for c in commits[:11]]
    older = list(repo.get_commits(until=middle))
    assert [c.sha for c in older] == [c.sha for c in commits[10:]]
    touching = list(repo.get_commits(path="app/views.py"))
    assert touching
    assert all(any(f.filename == "app/views.py" for f in c.files) for c in touching)
    assert len(touching) < len(commits)
    in_app = {c.sha for c in repo.get_commits(path="app")}
    assert in_app >= {c.sha for c in touching}
    assert list(repo.get_commits(path="no/such/file.py")) == []


def test_it_answers_a_conditional_request_with_304_that_costs_no_quota(sandbox, gh, repo):
    commit = repo.get_commit("v1.0.0")
    assert commit.etag.startswith('W/"')
    before = gh.rate_limiting[0]
    assert commit.update() is False  # If-None-Match → 304 Not Modified
    assert sandbox.answered[-1][2] == 304
    assert gh.rate_limiting[0] == before  # a 304 does not count
    assert repo.get_commit("v1.0.0").sha == commit.sha
    assert gh.rate_limiting[0] == before - 1


def test_it_counts_requests_down_and_refuses_past_the_rate_limit():
    with start(token=TOKEN, repos={"acme/web": 3}, rate_limit=5) as handle:
        gh = client(handle, retry=None, lazy=False)
        remaining = []
        for _ in range(5):
            gh.get_repo("acme/web")
            remaining.append(gh.rate_limiting[0])
        assert remaining == [4, 3, 2, 1, 0]
        assert gh.get_rate_limit().resources.core.remaining == 0  # /rate_limit is not counted
        with pytest.raises(RateLimitExceededException):
            gh.get_repo("acme/web")
