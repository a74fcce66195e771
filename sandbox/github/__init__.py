"""A GitHub (Enterprise-style, under `/api/v3`) that the real PyGithub cannot tell from GitHub.

    handle = start(repos={"acme/web": 10}, token="t0k3n")
    gh = Github(base_url=handle.api_url, auth=Auth.Token("t0k3n"))

See `model.apply_seed` for the seed format and `server.GitHubHandler` for the endpoints. GETs
carry ETags and answer `If-None-Match` with 304 (free on the rate limit); each token has
`rate_limit` requests an hour, counted down in `X-RateLimit-Remaining`; `answered` lists the
recent (method, path, status) for tests.
"""

from sandbox.faults import Faults, SandboxHandle
from sandbox.github.model import Store, apply_seed
from sandbox.github.server import GitHubHandler
from sandbox.http import serve


class GitHubSandbox(SandboxHandle):
    """The running sandbox plus in-process access to its data for tests."""

    def __init__(self, running, faults: Faults, store: Store):
        super().__init__(running, faults)
        self.store = store

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v3"

    def add_commits(self, repo: str, commits: int | list) -> list[str]:
        """Push `commits` (a count, or messages / {message, author} dicts) to the default branch."""
        return self.store.add_commits(repo, commits)

    def commits(self, repo: str) -> list[str]:
        """Shas of the default branch, oldest first."""
        with self.store.lock:
            return [c.sha for c in self.store.repos[repo.lower()].commits]

    def tag(self, repo: str, name: str, ref: str) -> str:
        """Point tag `name` at `ref` (sha, branch or tag); returns the sha."""
        with self.store.lock:
            repository = self.store.repos[repo.lower()]
            commit = repository.resolve(ref)
            if commit is None:
                raise KeyError(f"{repo} has no commit {ref!r}")
            repository.tags[name] = commit.sha
            return commit.sha

    @property
    def answered(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of the recent API answers, oldest first (304s included)."""
        return list(self.store.answered)

    @property
    def statuses(self) -> list[dict]:
        """Commit statuses as posted, oldest first (repo, sha, state, context, target_url, …)."""
        return list(self.store.statuses)

    @property
    def deployments(self) -> list[dict]:
        """Deployments, oldest first (id, repo, sha, ref, task, environment, payload, …)."""
        return list(self.store.deployments)

    @property
    def deployment_statuses(self) -> list[dict]:
        """Deployment statuses, oldest first (deployment_id, state, environment_url, …)."""
        return list(self.store.deployment_statuses)


def start(
    port: int = 0,
    token: str | None = None,
    repos: dict[str, int | list] | None = None,
    seed=None,
    host: str = "127.0.0.1",
    rate_limit: int = 5000,
) -> GitHubSandbox:
    """Serve the sandbox on a background thread; `seed` is a dict or a YAML/JSON file path;
    `rate_limit` is the requests each token may make per hour."""
    store = Store(rate_limit=rate_limit)
    apply_seed(store, repos, seed)
    faults = Faults()
    running = serve(GitHubHandler, port, host, store=store, faults=faults, token=token)
    return GitHubSandbox(running, faults, store)
