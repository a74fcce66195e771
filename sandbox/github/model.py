"""The GitHub sandbox's data: repositories with a linear history, statuses and deployments.

Everything is deterministic so tests and demos can hard-code what they expect: the sha of
commit `i` of `owner/name` is `sha1("owner/name:i")`, and dates, messages, authors and files are
derived from the index. A seed (YAML/JSON file or dict) can name tags, branches, authors and
messages; see `apply_seed`.
"""

import hashlib
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COMMIT_SPACING = timedelta(minutes=47)

DEFAULT_AUTHORS = (
    {"name": "Ada Lovelace", "email": "ada@example.com", "login": "ada"},
    {"name": "Grace Hopper", "email": "grace@example.com", "login": "ghopper"},
    {"name": "Linus Pauling", "email": "linus@example.com", "login": "lpauling"},
    {"name": "Margaret Hamilton", "email": "margaret@example.com", "login": "mhamilton"},
)

MESSAGES = (
    "Fix null check in checkout flow",
    "Add retry with backoff to payment client",
    "Bump requests from 2.32.3 to 2.32.4",
    "Refactor order serializer into smaller functions",
    "Add index on orders.created_at",
    "Log request id in access log",
    "Tune gunicorn worker count for the new nodes",
    "Remove unused feature flag new_cart",
    "Cache product listing for 60 seconds",
    "Handle timeouts from inventory service",
    "Update German translations",
    "Add readiness probe endpoint",
    "Paginate admin order list",
    "Fix flaky test for invoice rounding",
    "Raise upload size limit to 20 MB",
    "Migrate settings to django-environ",
)

FILES = (
    "app/views.py",
    "app/models.py",
    "app/serializers.py",
    "app/templates/checkout.html",
    "requirements.txt",
    "deploy/values.yaml",
    "tests/test_checkout.py",
    "README.md",
)


def _digest(*parts) -> int:
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest(), 16)


@dataclass
class Commit:
    sha: str
    index: int
    message: str
    author: dict
    date: datetime
    parent: str | None

    def files(self) -> list[dict]:
        """One to three changed files, picked deterministically."""
        seed = _digest(self.sha, "files")
        count = 1 + seed % 3
        picked = [FILES[(seed >> (8 * i)) % len(FILES)] for i in range(count)]
        return [
            {
                "filename": name,
                "additions": 1 + (seed >> (4 * i)) % 40,
                "deletions": (seed >> i) % 15,
            }
            for i, name in enumerate(dict.fromkeys(picked))
        ]


@dataclass
class Repository:
    owner: str
    name: str
    id: int
    default_branch: str = "main"
    commits: list[Commit] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # name -> sha
    branches: dict[str, str] = field(default_factory=dict)  # name other than main -> sha
    authors: tuple[dict, ...] = DEFAULT_AUTHORS

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def head(self) -> Commit | None:
        return self.commits[-1] if self.commits else None

    def add_commit(self, message: str | None = None, author: dict | None = None) -> Commit:
        index = len(self.commits)
        sha = hashlib.sha1(f"{self.full_name}:{index}".encode()).hexdigest()
        seed = _digest(self.full_name, index)
        commit = Commit(
            sha=sha,
            index=index,
            message=message or MESSAGES[seed % len(MESSAGES)],
            author=author or self.authors[(seed >> 8) % len(self.authors)],
            date=EPOCH + index * COMMIT_SPACING,
            parent=self.head.sha if self.head else None,
        )
        self.commits.append(commit)
        return commit

    def branch_heads(self) -> dict[str, str]:
        heads = {self.default_branch: self.head.sha} if self.head else {}
        return heads | self.branches

    def resolve(self, ref: str) -> Commit | None:
        """Find a commit by full or short sha, branch or tag name (also `refs/heads/…`, `HEAD`)."""
        ref = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if ref == "HEAD":
            return self.head
        sha = self.branch_heads().get(ref) or self.tags.get(ref)
        if sha:
            return self.by_sha(sha)
        if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref.lower()):
            found = [c for c in self.commits if c.sha.startswith(ref.lower())]
            return found[0] if len(found) == 1 else None
        return None

    def by_sha(self, sha: str) -> Commit | None:
        return next((c for c in self.commits if c.sha == sha), None)

    def history(self, head: Commit) -> list[Commit]:
        """`git log head`: newest first."""
        return self.commits[head.index :: -1]


class RateLimits:
    """GitHub's primary rate limit: requests per identity (token or address) per hour."""

    def __init__(self, per_token: int = 5000, anonymous: int = 60, window: int = 3600):
        self.per_token, self.anonymous, self.window = per_token, anonymous, window
        self._lock = threading.Lock()
        self._used: dict[str, list[int]] = {}  # identity → [used, reset epoch]

    def _entry(self, identity: str) -> list[int]:
        now = int(time.time())
        entry = self._used.get(identity)
        if entry is None or entry[1] <= now:
            entry = self._used[identity] = [0, now + self.window]
        return entry

    def limit(self, identity: str) -> int:
        return self.per_token if identity.startswith("token:") else self.anonymous

    def count(self, identity: str) -> int:
        """Count one request; raise RateLimited past the limit. Returns the window's reset."""
        with self._lock:
            entry = self._entry(identity)
            if entry[0] >= self.limit(identity):
                raise RateLimited(entry[1])
            entry[0] += 1
            return entry[1]

    def refund(self, identity: str, reset: int) -> None:
        with self._lock:
            entry = self._used.get(identity)
            if entry is not None and entry[1] == reset and entry[0] > 0:
                entry[0] -= 1

    def state(self, identity: str) -> tuple[int, int, int]:
        """(limit, used, reset epoch) for the headers."""
        with self._lock:
            entry = self._entry(identity)
            return self.limit(identity), entry[0], entry[1]


class RateLimited(Exception):
    def __init__(self, reset: int):
        super().__init__(f"rate limit exceeded until {reset}")
        self.reset = reset


class Store:
    """All repositories plus what clients wrote (statuses, deployments); guarded by one lock."""

    def __init__(self, rate_limit: int = 5000):
        self.limits = RateLimits(per_token=rate_limit)
        self.answered: deque = deque(maxlen=1000)  # (method, path, status) of recent API answers
        self.lock = threading.RLock()
        self.repos: dict[str, Repository] = {}
        self.statuses: list[dict] = []  # commit statuses, oldest first
        self.deployments: list[dict] = []  # oldest first
        self.deployment_statuses: list[dict] = []  # oldest first
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def repo(self, owner: str, name: str) -> Repository | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def create_repo(self, full_name: str) -> Repository:
        owner, name = full_name.split("/", 1)
        repo = Repository(owner, name, id=100000 + _digest(full_name) % 900000)
        self.repos[full_name.lower()] = repo
        return repo

    def add_commits(self, full_name: str, spec: int | list) -> list[str]:
        """Append `spec` commits (a count, or a list of messages or {message, author} dicts)."""
        with self.lock:
            repo = self.repos.get(full_name.lower()) or self.create_repo(full_name)
            items = [None] * spec if isinstance(spec, int) else list(spec)
            return [self._add_one(repo, item).sha for item in items]

    @staticmethod
    def _add_one(repo: Repository, item) -> Commit:
        if isinstance(item, dict):
            return repo.add_commit(item.get("message"), _author(repo, item.get("author")))
        return repo.add_commit(item)


def _author(repo: Repository, who) -> dict | None:
    """An author given by login or name (from the repo's authors), or as a full dict."""
    if isinstance(who, dict):
        return {"name": who["name"], "email": who.get("email", ""), "login": who.get("login")}
    return next((a for a in repo.authors if who in (a["login"], a["name"])), None)


def load_seed(seed) -> dict:
    """A seed given as a dict, or a path to a YAML or JSON file (YAML is a superset of JSON)."""
    if seed is None:
        return {}
    if isinstance(seed, dict):
        return seed
    return yaml.safe_load(Path(seed).read_text()) or {}


def apply_seed(store: Store, repos: dict[str, int | list] | None, seed=None) -> None:
    """Create the repositories of `repos` ({"acme/web": 10}) and of the seed.

    Seed format (YAML or JSON)::

        repos:
          acme/web:
            default_branch: main       # optional
            authors:                   # optional; replaces the default four
              - {name: Ada Lovelace, email: ada@example.com, login: ada}
            commits: 12                # a count, or a list of messages / {message, author}
            messages: [...]            # optional explicit messages for the first commits
            tags: {v1.0.0: 4, v1.1.0: -1}       # name -> commit index (0 = oldest, -1 = head)
            branches: {release/1.0: 4}          # extra branches pointing into the history
    """
    specs = {name: dict(spec or {}) for name, spec in load_seed(seed).get("repos", {}).items()}
    for name, count in (repos or {}).items():
        specs.setdefault(name, {}).setdefault("commits", count)
    with store.lock:
        for name, spec in specs.items():
            _seed_repo(store, name, spec)


def _seed_repo(store: Store, full_name: str, spec: dict) -> None:
    repo = store.create_repo(full_name)
    repo.default_branch = spec.get("default_branch", "main")
    if spec.get("authors"):
        repo.authors = tuple(_author(repo, a) for a in spec["authors"])
    commits = spec.get("commits", 0)
    if isinstance(commits, int):
        messages = list(spec.get("messages", []))[:commits]
        commits = messages + [None] * (commits - len(messages))
    store.add_commits(full_name, commits)
    repo.tags.update({tag: repo.commits[i].sha for tag, i in (spec.get("tags") or {}).items()})
    repo.branches.update({b: repo.commits[i].sha for b, i in (spec.get("branches") or {}).items()})
