"""The GitHub client (plumbing.integrations.github): the real PyGithub against the GitHub sandbox."""

import pytest

from plumbing.integrations import IntegrationError, github
from tests.support import GITHUB_REPO

REPO = GITHUB_REPO


def test_it_compares_oldest_first_excluding_base_and_including_head(github_sandbox, repo_shas):
    comparison = github.compare(REPO, repo_shas[3], repo_shas[8])
    assert comparison.status == "ahead"
    assert comparison.ahead_by == 5
    assert [c.sha for c in comparison.commits] == repo_shas[4:9]


def test_it_returns_our_commit_dataclass_with_author_message_and_links(github_sandbox):
    base = github_sandbox.commits(REPO)[-1]
    github_sandbox.add_commits(REPO, [{"message": "Fix cart rounding\n\nLonger explanation.", "author": "ghopper"}])
    (commit,) = github.compare(REPO, base, github_sandbox.commits(REPO)[-1]).commits
    assert commit.title == "Fix cart rounding"
    assert commit.message == "Fix cart rounding\n\nLonger explanation."
    assert (commit.author_name, commit.author_login) == ("Grace Hopper", "ghopper")
    assert commit.short == commit.sha[:7]
    assert commit.html_url == f"{github_sandbox.url}/{REPO}/commit/{commit.sha}"
    assert commit.date is not None


def test_it_follows_pagination_of_a_long_comparison(github_sandbox):
    github_sandbox.add_commits(REPO, 600)
    shas = github_sandbox.commits(REPO)
    comparison = github.compare(REPO, shas[2], shas[-1], limit=1000)
    # The sandbox, like GitHub, sends 250 commits per page and a Link header for the rest.
    assert comparison.ahead_by == len(shas) - 3
    assert [c.sha for c in comparison.commits] == shas[3:]


def test_it_stops_at_the_limit_and_says_how_many_there_are(github_sandbox, repo_shas):
    comparison = github.compare(REPO, repo_shas[0], repo_shas[20], limit=5)
    assert [c.sha for c in comparison.commits] == repo_shas[1:6]
    assert comparison.ahead_by == 20
    assert comparison.truncated


def test_it_reports_identical_and_behind(github_sandbox, repo_shas):
    assert github.compare(REPO, repo_shas[5], repo_shas[5]).status == "identical"
    behind = github.compare(REPO, repo_shas[9], repo_shas[5])
    assert (behind.status, behind.behind_by, behind.commits) == ("behind", 4, [])


def test_it_reads_one_commit(github_sandbox, repo_shas):
    commit = github.get_commit(REPO, repo_shas[4])
    assert commit.sha == repo_shas[4]
    assert commit.title


def test_it_lists_the_last_commits_up_to_a_sha_oldest_first(github_sandbox, repo_shas):
    commits = github.recent_commits(REPO, repo_shas[12], limit=4)
    assert [c.sha for c in commits] == repo_shas[9:13]


def test_it_creates_a_commit_status(github_sandbox, repo_shas):
    status = github.create_commit_status(
        REPO, repo_shas[2], "success", context="pampam/deploy-dev", description="Deployed", target_url="http://p/d/1"
    )
    assert (status.state, status.context) == ("success", "pampam/deploy-dev")
    posted = github_sandbox.statuses[-1]
    assert (posted["sha"], posted["state"], posted["target_url"]) == (repo_shas[2], "success", "http://p/d/1")


def test_it_creates_a_deployment_even_while_a_commit_status_is_pending(github_sandbox, repo_shas):
    # Without required_contexts=[] GitHub (and the sandbox) answer 409 here.
    github.create_commit_status(REPO, repo_shas[2], "pending", context="ci/build")
    made = github.create_deployment(
        REPO,
        repo_shas[2],
        environment="prod",
        description="web 1.2.0",
        production=True,
        payload={"pampam_deployment_id": 7},
    )
    (recorded,) = github_sandbox.deployments
    assert recorded["id"] == made.id
    assert (recorded["sha"], recorded["environment"], recorded["payload"]) == (
        repo_shas[2],
        "prod",
        {"pampam_deployment_id": 7},
    )
    assert recorded["production_environment"] is True
    assert recorded["transient_environment"] is False


@pytest.mark.parametrize("state", ["queued", "in_progress", "success", "failure", "inactive"])
def test_it_creates_deployment_statuses(github_sandbox, repo_shas, state):
    made = github.create_deployment(REPO, repo_shas[1], environment="staging")
    status = github.create_deployment_status(
        REPO, made.id, state, target_url="http://p/deployments/3/", environment_url="http://p/services/web/"
    )
    assert (status.deployment_id, status.state) == (made.id, state)
    posted = github_sandbox.deployment_statuses[-1]
    assert posted["state"] == state
    assert posted["target_url"] == "http://p/deployments/3/"
    assert posted["environment_url"] == "http://p/services/web/"


def test_it_refuses_states_github_does_not_know(github_sandbox):
    with pytest.raises(IntegrationError) as raised:
        github.create_deployment_status(REPO, 1, "done")
    assert raised.value.permanent


def test_it_calls_an_unknown_sha_a_permanent_error(github_sandbox):
    with pytest.raises(IntegrationError, match="422") as raised:
        github.get_commit(REPO, "f" * 40)
    assert raised.value.permanent


def test_it_calls_an_unknown_repository_a_permanent_error(github_sandbox, repo_shas):
    with pytest.raises(IntegrationError, match="404") as raised:
        github.compare("acme/nope", repo_shas[0], repo_shas[1])
    assert raised.value.permanent


def test_it_calls_a_bad_token_a_permanent_error_without_showing_it(github_sandbox, repo_shas, settings):
    settings.GITHUB_TOKEN = "wrong-token"
    with pytest.raises(IntegrationError, match="401") as raised:
        github.get_commit(REPO, repo_shas[0])
    assert raised.value.permanent
    assert "wrong-token" not in str(raised.value)


def test_it_calls_a_server_error_transient(github_sandbox, repo_shas):
    github_sandbox.set_fault(500, count=1)
    with pytest.raises(IntegrationError, match="500") as raised:
        github.create_deployment(REPO, repo_shas[0], environment="dev")
    assert not raised.value.permanent
    assert github_sandbox.deployments == []


def test_it_calls_a_timeout_transient(github_sandbox, repo_shas, monkeypatch):
    monkeypatch.setattr(github, "TIMEOUT_SECONDS", 1)  # PyGithub wants whole seconds
    github_sandbox.set_delay(1.5)
    with pytest.raises(IntegrationError, match="did not answer") as raised:
        github.get_commit(REPO, repo_shas[0])
    assert not raised.value.permanent


def test_it_calls_an_unreachable_github_transient(github_sandbox, repo_shas):
    github_sandbox.stop()
    with pytest.raises(IntegrationError, match="could not be reached") as raised:
        github.get_commit(REPO, repo_shas[0])
    assert not raised.value.permanent


def test_it_says_so_when_github_is_not_configured(settings):
    settings.GITHUB_API_URL = ""
    assert not github.configured()
    with pytest.raises(IntegrationError, match="not configured") as raised:
        github.get_commit(REPO, "abc1234")
    assert raised.value.permanent


def test_it_reads_again_with_a_conditional_request_that_costs_no_quota(github_sandbox, repo_shas):
    first = github.compare(REPO, repo_shas[3], repo_shas[8])
    remaining = github.client().rate_limiting[0]
    again = github.compare(REPO, repo_shas[3], repo_shas[8])
    assert again == first
    path, status = github_sandbox.answered[-1][1:]
    assert (path.split("?")[0], status) == (f"/api/v3/repos/{REPO}/compare/{repo_shas[3]}...{repo_shas[8]}", 304)
    assert github.client().rate_limiting[0] == remaining
    assert github.recent_commits(REPO, repo_shas[8], limit=3) == github.recent_commits(REPO, repo_shas[8], limit=3)
    assert github_sandbox.answered[-1][2] == 304
    assert github.get_commit(REPO, repo_shas[5]) == github.get_commit(REPO, repo_shas[5])
    assert github_sandbox.answered[-1][2] == 304


def test_it_sees_a_change_through_a_conditional_request(github_sandbox, repo_shas):
    before = github.recent_commits(REPO, "main", limit=3)
    github_sandbox.add_commits(REPO, ["Add the group-buy countdown"])
    after = github.recent_commits(REPO, "main", limit=3)
    assert github_sandbox.answered[-1][2] == 200  # the ETag no longer matched
    assert after[-1].title == "Add the group-buy countdown"
    assert after[:-1] == before[1:]
