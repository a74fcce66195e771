"""Changelogs: the commits between what runs in an environment and what is proposed.

GitHub is asked through `plumbing.integrations.github` on a small thread pool, and the page
waits at most DEADLINE_SECONDS for all its changelogs together: a slow or down GitHub shows
a notice, never blocks a page for long and never fails it. An answer that arrives after the
deadline still lands in the cache, so the next view of the page has it.

Results are cached per (GitHub URL, repository, base sha, head sha). Shas name immutable
history, so a comparison never goes stale; failures are cached briefly so a GitHub outage
costs one wait per FAILURE_CACHE_SECONDS rather than one per page view.
"""

import hashlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

from clusters.models import Environment
from plumbing.integrations import IntegrationError, github
from plumbing.rows import NEWEST_FIRST
from releases import board, states
from releases.models import Deployment, Release

DEADLINE_SECONDS = 2.0
CACHE_SECONDS = 24 * 3600
FAILURE_CACHE_SECONDS = 30
PERMANENT_FAILURE_CACHE_SECONDS = 300
FIRST_DEPLOYMENT_COMMITS = 10
MAX_COMMITS = 250
SLOW_NOTICE = "GitHub did not answer in time; the changelog is unavailable."

# Kinds of changelog (what the templates switch on).
COMMITS = "commits"  # head is ahead of base: these commits arrive
IDENTICAL = "identical"  # same commit: nothing changes
BEHIND = "behind"  # head is older than base: these commits would go away (a rollback)
FIRST = "first"  # nothing runs there yet: the last commits up to head
UNAVAILABLE = "unavailable"  # GitHub slow, down or refusing: `notice` says why
NO_SHA = "no_sha"  # the release does not name a commit

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="changelog")
_inflight: dict[str, Future] = {}
_inflight_lock = threading.Lock()


@dataclass(frozen=True)
class Request:
    """Which commits to fetch: `base...head`, or with no base the last commits up to head."""

    repo: str
    base: str
    head: str

    @property
    def cache_key(self) -> str:
        raw = "|".join([settings.GITHUB_API_URL, self.repo.lower(), self.base, self.head])
        return "changelog:v1:" + hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Changelog:
    kind: str
    commits: list[github.Commit] = field(default_factory=list)
    total: int = 0
    html_url: str = ""
    notice: str = ""
    base: str = ""
    head: str = ""

    @property
    def more(self) -> int:
        return max(self.total - len(self.commits), 0)


def fetch(requests: list[Request]) -> dict[Request, Changelog]:
    """Changelogs for `requests`, fetched in parallel, all within one DEADLINE_SECONDS."""
    found: dict[Request, Changelog] = {}
    waiting: dict[Request, Future] = {}
    for request in dict.fromkeys(requests):
        if request.base and request.base == request.head:
            found[request] = Changelog(IDENTICAL, base=request.base, head=request.head)
            continue
        cached = cache.get(request.cache_key)
        if cached is not None:
            found[request] = _changelog(request, cached)
        else:
            waiting[request] = _start(request)
    deadline = time.monotonic() + DEADLINE_SECONDS
    for request, future in waiting.items():
        try:
            outcome = future.result(timeout=max(deadline - time.monotonic(), 0))
        except FutureTimeout:
            found[request] = Changelog(UNAVAILABLE, notice=SLOW_NOTICE, base=request.base, head=request.head)
            continue
        found[request] = _changelog(request, outcome)
    return found


def between(repo: str, base: str, head: str) -> Changelog:
    return fetch([Request(repo, base, head)])[Request(repo, base, head)]


def _start(request: Request) -> Future:
    # One fetch per key at a time: page views waiting for the same slow answer share it.
    with _inflight_lock:
        future = _inflight.get(request.cache_key)
        if future is None:
            future = _inflight[request.cache_key] = _pool.submit(_fetch_and_cache, request)
        return future


def _fetch_and_cache(request: Request) -> tuple:
    try:
        outcome = ("ok", _from_github(request))
        timeout = CACHE_SECONDS
    except IntegrationError as error:
        outcome = ("error", str(error))
        timeout = PERMANENT_FAILURE_CACHE_SECONDS if error.permanent else FAILURE_CACHE_SECONDS
    except Exception as error:  # noqa: BLE001 - a changelog must never break a page
        outcome = ("error", f"GitHub's answer could not be read ({error.__class__.__name__}).")
        timeout = FAILURE_CACHE_SECONDS
    finally:
        with _inflight_lock:
            _inflight.pop(request.cache_key, None)
    cache.set(request.cache_key, outcome, timeout)
    return outcome


def _from_github(request: Request) -> tuple[str, list, int, str]:
    if not request.base:
        commits = github.recent_commits(request.repo, request.head, FIRST_DEPLOYMENT_COMMITS)
        return FIRST, commits, len(commits), ""
    comparison = github.compare(request.repo, request.base, request.head, MAX_COMMITS)
    if comparison.status == "identical":
        return IDENTICAL, [], 0, comparison.html_url
    if comparison.status == "behind":
        # Going back: show what would disappear, which is what a reviewer needs to judge.
        back = github.compare(request.repo, request.head, request.base, MAX_COMMITS)
        return BEHIND, back.commits, back.ahead_by, back.html_url
    return COMMITS, comparison.commits, comparison.ahead_by, comparison.html_url


def _changelog(request: Request, outcome: tuple) -> Changelog:
    if outcome[0] == "error":
        notice = f"GitHub could not provide the changelog: {outcome[1]}"
        return Changelog(UNAVAILABLE, notice=notice, base=request.base, head=request.head)
    kind, commits, total, html_url = outcome[1]
    return Changelog(kind, commits, total, html_url, base=request.base, head=request.head)


# --- what the pages ask for -----------------------------------------------------------------


def enabled(service) -> bool:
    return bool(service.github_repo) and github.configured()


def running_release(service, environment) -> Release | None:
    """The release of the last succeeded deployment of `service` in `environment`."""
    deployment = (
        Deployment.objects.filter(service=service, environment=environment, state=states.SUCCEEDED)
        .select_related("release")
        .order_by("-finished_at", "-id")
        .first()
    )
    return deployment.release if deployment else None


def request_for(service, base: Release | None, head: Release) -> Request | None:
    """What to fetch to go from `base` (None: nothing runs yet) to `head`; None without a sha."""
    if not head.git_sha:
        return None
    if base is None or not base.git_sha:
        return Request(service.github_repo, "", head.git_sha)
    return Request(service.github_repo, base.git_sha, head.git_sha)


def for_deployment(deployment) -> Changelog | None:
    """The commits a deployment brings: from its previous release to its release."""
    if not enabled(deployment.service):
        return None
    request = request_for(deployment.service, deployment.previous_release, deployment.release)
    if request is None:
        return Changelog(NO_SHA)
    return fetch([request])[request]


@dataclass
class Target:
    """One environment seen from a release page: what runs there and what this release changes."""

    environment: Environment
    running: Release | None
    changelog: Changelog
    is_next: bool = False


def for_release(release) -> list[Target]:
    """Per environment: what runs there and the commits this release would bring (or remove).

    The next environment on the promotion path (the first where this release has not
    succeeded) is marked, so the page can open its list first.
    """
    service = release.service
    if not enabled(service):
        return []
    environments = list(Environment.objects.all())
    running = _running_per_environment(service, environments)
    requests = {env.pk: request_for(service, running.get(env.pk), release) for env in environments}
    answers = fetch([r for r in requests.values() if r is not None])
    reached = set(
        Deployment.objects.filter(release=release, state=states.SUCCEEDED).values_list("environment_id", flat=True)
    )
    targets = []
    for env in environments:
        request = requests[env.pk]
        changelog = answers[request] if request else Changelog(NO_SHA)
        targets.append(Target(env, running.get(env.pk), changelog))
    upcoming = [t for t in targets if t.environment.pk not in reached]
    if upcoming:
        upcoming[0].is_next = True
    return targets


def _running_per_environment(service, environments) -> dict[int, Release]:
    """The release of the last success per environment, in one query (as the dashboard shows it)."""
    pairs = board.latest_per_pair([service], environments, state=states.SUCCEEDED)
    return {env_id: deployment.release for (_, env_id), deployment in pairs.items()}


@dataclass
class Pending:
    """Commits on their way to production: between what prod runs and the newest code."""

    environment: Environment
    running: Release | None
    head_label: str
    changelog: Changelog | None
    versions: dict[str, list[str]] = field(default_factory=dict)  # sha -> release versions built from it
    # Releases newer than what runs that name no commit: what they change cannot be known.
    unknown: list[str] = field(default_factory=list)


def not_in_production(service) -> Pending | None:
    """What production does not run yet: up to the last push recorded on main, else the newest release."""
    if not enabled(service):
        return None
    prod = Environment.objects.filter(is_production=True).order_by("position").first()
    if prod is None:
        return None
    running = running_release(service, prod)
    head, label = _newest_code(service)
    unknown = []
    if running is not None:
        newer = service.releases.filter(git_sha="", created_at__gt=running.created_at).order_by("-created_at")
        unknown = list(newer.values_list("version", flat=True)[:5])
    if running is None or not running.git_sha or not head:
        return Pending(prod, running, label, None, unknown=unknown)
    changelog = between(service.github_repo, running.git_sha, head)
    versions: dict[str, list[str]] = {}
    shas = [c.sha for c in changelog.commits]
    for version, sha in service.releases.filter(git_sha__in=shas).values_list("version", "git_sha")[:200]:
        versions.setdefault(sha, []).append(version)
    return Pending(prod, running, label, changelog, versions, unknown)


def _newest_code(service) -> tuple[str, str]:
    pushed = service.commits.order_by("-pushed_at", "-id").first()
    if pushed is not None:
        return pushed.sha, f"the last push to main ({pushed.sha[:7]})"
    release = service.releases.exclude(git_sha="").order_by(*NEWEST_FIRST).first()
    if release is not None:
        return release.git_sha, f"the newest release {release.version}"
    return "", ""
