"""GitHub through PyGithub: compare commits, commit statuses, Deployments and their statuses.

Configured by GITHUB_API_URL (`https://api.github.com`, or `https://ghe.example/api/v3`) and
GITHUB_TOKEN. Everything returns our own dataclasses; every failure is an IntegrationError,
permanent for 4xx answers that a retry cannot fix (401, 403, 404, 409, 422), transient for 5xx,
rate limits, timeouts and connection errors.

Client settings, and why:
- `timeout=TIMEOUT_SECONDS` (5 s): pages call GitHub for changelogs, so a slow GitHub must
  never hold a request for long (pages add their own hard deadline on top, see
  releases.changelog).
- `retry=None`: PyGithub's default GithubRetry retries 5xx up to 10 times with backoff inside
  the call, which would block a page for minutes. Pages show a notice instead, and jobs retry
  with rq's Retry (bounded, visible, and spread over minutes).
- `seconds_between_requests=None, seconds_between_writes=None`: PyGithub otherwise sleeps
  0.25 s before every request and 1 s before every write. The portal writes a handful of
  statuses per deployment, far below GitHub's secondary limit on content creation (80 per
  minute), and those sleeps would only slow down jobs and pages.
- One client per (URL, token) *per thread*: PyGithub's Requester keeps one connection object
  whose `request()` stores the verb and URL for the following `getresponse()`, so a client
  shared by threads can send one thread's request with another's URL.
- Reads are conditional requests: the answer to each read is kept (with its ETag) in a small
  per-process cache, and asking again sends `If-None-Match`; GitHub then answers
  `304 Not Modified` with no body, which does not count against the rate limit. So reading the
  same changelog again (after the page cache expired, or from another page) costs no quota.
  They go through PyGithub's own requester, which the library offers for exactly this, and
  become PyGithub objects with `create_from_raw_data`.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import requests
from django.conf import settings
from github import Auth, Github, GithubException, RateLimitExceededException
from github.Commit import Commit as GithubCommit
from github.Comparison import Comparison as GithubComparison

from plumbing.integrations import IntegrationError

TIMEOUT_SECONDS = 5
COMMIT_STATES = ("error", "failure", "pending", "success")
DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
# A retry cannot change these answers (bad token, no access, no such repo or sha, conflict).
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 422})

_local = threading.local()
# Conditional reads: (URL, token digest, path, parameters) → (ETag, response headers, data).
CONDITIONAL_CACHE_SIZE = 512
_answers: OrderedDict = OrderedDict()
_answers_lock = threading.Lock()


@dataclass(frozen=True)
class Commit:
    """A commit as a changelog shows it."""

    sha: str
    short: str
    title: str  # first line of the message
    message: str  # the full message
    author_name: str
    author_login: str | None
    date: datetime | None
    html_url: str


@dataclass(frozen=True)
class Comparison:
    """`base...head`: the commits head has that base has not, oldest first."""

    status: str  # ahead, behind, identical, diverged
    ahead_by: int
    behind_by: int
    commits: list[Commit]
    html_url: str

    @property
    def truncated(self) -> bool:
        return len(self.commits) < self.ahead_by


@dataclass(frozen=True)
class CommitStatus:
    id: int
    sha: str
    state: str
    context: str
    target_url: str


@dataclass(frozen=True)
class Deployment:
    id: int
    sha: str
    ref: str
    environment: str


@dataclass(frozen=True)
class DeploymentStatus:
    id: int
    deployment_id: int
    state: str


def configured() -> bool:
    return bool(settings.GITHUB_API_URL)


def client() -> Github:
    """This thread's PyGithub client for the configured GitHub, created once and reused."""
    if not configured():
        raise IntegrationError("GitHub is not configured (GITHUB_API_URL is empty).", permanent=True)
    key = (settings.GITHUB_API_URL, settings.GITHUB_TOKEN, TIMEOUT_SECONDS)
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    if key not in clients:
        clients[key] = Github(
            base_url=settings.GITHUB_API_URL,
            auth=Auth.Token(settings.GITHUB_TOKEN) if settings.GITHUB_TOKEN else None,
            timeout=TIMEOUT_SECONDS,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
    return clients[key]


def _repo(full_name: str):
    # Lazy: no request until a call needs one, so each function below costs one round trip.
    return client().get_repo(full_name)


def _conditional_get(path: str, parameters: dict | None = None) -> tuple[dict, object]:
    """GET `path` (relative to the API root), sending the ETag of the last answer to the same
    request; a 304 reuses that answer. Returns (response headers, parsed JSON).

    # Reference: https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
    """
    token = hashlib.sha256((settings.GITHUB_TOKEN or "").encode()).hexdigest()[:16]
    key = (settings.GITHUB_API_URL, token, path, tuple(sorted((parameters or {}).items())))
    with _answers_lock:
        known = _answers.get(key)
    headers = {"If-None-Match": known[0]} if known else None
    answer_headers, data = client().requester.requestJsonAndCheck("GET", path, parameters, headers)
    if data is None and known is not None:  # 304 Not Modified: no body
        return known[1], known[2]
    etag = answer_headers.get("etag")
    if etag:
        with _answers_lock:
            _answers[key] = (etag, answer_headers, data)
            _answers.move_to_end(key)
            while len(_answers) > CONDITIONAL_CACHE_SIZE:
                _answers.popitem(last=False)
    return answer_headers, data


def _repo_path(full_name: str) -> str:
    return "/repos/" + "/".join(quote(part, safe="") for part in full_name.split("/", 1))


def _error(exc: Exception, what: str) -> IntegrationError:
    if isinstance(exc, RateLimitExceededException):
        return IntegrationError(f"GitHub rate limit reached while {what}; retry later.", permanent=False)
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        permanent = exc.status in PERMANENT_STATUSES
        return IntegrationError(f"GitHub answered {exc.status} while {what}: {message or 'no message'}", permanent)
    if isinstance(exc, requests.Timeout):
        return IntegrationError(f"GitHub did not answer within {TIMEOUT_SECONDS} s while {what}.")
    return IntegrationError(f"GitHub could not be reached while {what}: {exc.__class__.__name__}")


def _call(what: str, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except (GithubException, requests.RequestException) as exc:
        raise _error(exc, what) from None


def _commit(item) -> Commit:
    message = item.commit.message or ""
    author = item.commit.author
    login = item.author.login if item.author is not None else None
    return Commit(
        sha=item.sha,
        short=item.sha[:7],
        title=message.split("\n", 1)[0],
        message=message,
        author_name=(author.name if author else "") or login or "",
        author_login=login,
        date=author.date if author else None,
        html_url=item.html_url,
    )


def compare(repo: str, base: str, head: str, limit: int = 250) -> Comparison:
    """The commits on `head` since `base` (base excluded, head included), oldest first.

    Follows the `Link` pagination of the commit list up to `limit` commits; `ahead_by` tells
    how many there are in all.
    # Reference: https://docs.github.com/en/rest/commits/commits#compare-two-commits
    """

    def fetch() -> Comparison:
        headers, data = _conditional_get(f"{_repo_path(repo)}/compare/{quote(base)}...{quote(head)}")
        comparison = client().create_from_raw_data(GithubComparison, data, headers)
        commits = []
        if comparison.ahead_by:
            for item in comparison.commits:
                commits.append(_commit(item))
                if len(commits) >= limit:
                    break
        return Comparison(
            status=comparison.status,
            ahead_by=comparison.ahead_by,
            behind_by=comparison.behind_by,
            commits=commits,
            html_url=comparison.html_url,
        )

    return _call(f"comparing {base[:12]}...{head[:12]} in {repo}", fetch)


def recent_commits(repo: str, head: str, limit: int = 10) -> list[Commit]:
    """The last `limit` commits up to and including `head`, oldest first.

    # Reference: https://docs.github.com/en/rest/commits/commits#list-commits
    """

    def fetch() -> list[Commit]:
        headers, data = _conditional_get(f"{_repo_path(repo)}/commits", {"sha": head, "per_page": limit})
        items = [client().create_from_raw_data(GithubCommit, raw, headers) for raw in data[:limit]]
        return [_commit(item) for item in items][::-1]

    return _call(f"listing commits up to {head[:12]} in {repo}", fetch)


def get_commit(repo: str, ref: str) -> Commit:
    """One commit by sha, branch or tag.

    # Reference: https://docs.github.com/en/rest/commits/commits#get-a-commit
    """

    def fetch() -> Commit:
        headers, data = _conditional_get(f"{_repo_path(repo)}/commits/{quote(ref)}")
        return _commit(client().create_from_raw_data(GithubCommit, data, headers))

    return _call(f"reading commit {ref[:12]} of {repo}", fetch)


def create_commit_status(
    repo: str, sha: str, state: str, *, context: str, description: str = "", target_url: str = ""
) -> CommitStatus:
    """Set the status `context` on commit `sha` (error, failure, pending or success).

    # Reference: https://docs.github.com/en/rest/commits/statuses#create-a-commit-status
    """
    if state not in COMMIT_STATES:
        raise IntegrationError(f"{state!r} is not a GitHub commit status.", permanent=True)

    def create() -> CommitStatus:
        commit = _repo(repo).get_commit(sha)
        status = commit.create_status(state, target_url=target_url, description=description[:140], context=context)
        return CommitStatus(status.id, commit.sha, status.state, status.context, status.target_url or "")

    return _call(f"setting status {context} on {sha[:12]} in {repo}", create)


def create_deployment(
    repo: str,
    ref: str,
    *,
    environment: str,
    description: str = "",
    production: bool = False,
    transient: bool = False,
    payload: dict | None = None,
    task: str = "deploy",
) -> Deployment:
    """Create a GitHub Deployment of `ref` (a sha) to `environment`.

    `required_contexts=[]` skips GitHub's commit status check: the portal's own rules already
    decided (otherwise GitHub answers 409 while any status on the commit is pending), and
    `auto_merge=False` keeps GitHub from merging the default branch into the ref.
    # Reference: https://docs.github.com/en/rest/deployments/deployments#create-a-deployment
    """

    def create() -> Deployment:
        made = _repo(repo).create_deployment(
            ref=ref,
            task=task,
            auto_merge=False,
            required_contexts=[],
            payload=payload or {},
            environment=environment,
            description=description[:140],
            transient_environment=transient,
            production_environment=production,
        )
        return Deployment(made.id, made.sha, made.ref, made.environment)

    return _call(f"creating a deployment of {ref[:12]} to {environment} in {repo}", create)


def create_deployment_status(
    repo: str, deployment_id: int, state: str, *, description: str = "", target_url: str = "", environment_url: str = ""
) -> DeploymentStatus:
    """Add a status (queued, in_progress, success, failure, inactive, …) to a GitHub Deployment.

    `target_url` points at the portal's deployment page (GitHub shows it as the log link).
    # Reference: https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status
    """
    if state not in DEPLOYMENT_STATES:
        raise IntegrationError(f"{state!r} is not a GitHub deployment status.", permanent=True)

    def create() -> DeploymentStatus:
        deployment = _repo(repo).get_deployment(int(deployment_id))
        status = deployment.create_status(
            state,
            target_url=target_url,
            description=description[:140],
            environment_url=environment_url,
        )
        return DeploymentStatus(status.id, int(deployment_id), status.state)

    return _call(f"reporting {state} on deployment {deployment_id} in {repo}", create)
