"""The GitHub sandbox's HTTP handler: the REST API v3 subset Pampam uses, under `/api/v3`.

Replies follow docs.github.com closely enough that PyGithub, configured with `base_url` as for
GitHub Enterprise, cannot tell the difference (PROTOCOLS.md §3): absolute URLs, `Link`
pagination, `{"message", "documentation_url"}` errors, token auth and rate limits.

* Every successful GET carries an `ETag`; a request whose `If-None-Match` names it gets
  `304 Not Modified` with no body, and (as on GitHub, for an authenticated request) that answer
  does not count against the rate limit.
* Rate limits: each token has `rate_limit` requests an hour (5,000 by default; 60 per address
  without a token); `X-RateLimit-Remaining` / `-Used` / `-Reset` go down with every counted
  request, `GET /rate_limit` (not counted) reports them, and past the limit the answer is
  403 "API rate limit exceeded".
* `GET …/commits` honours `sha`, `author`, `since`, `until` (ISO 8601) and `path` (a file, or a
  directory prefix, that the commit touched).
"""

import hashlib
import itertools
import json
import math
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlencode, urlsplit

from sandbox.faults import FaultingHandler, route_table
from sandbox.github import render
from sandbox.github.model import RateLimited, Repository, Store

DOCS = "https://docs.github.com/rest"
BOT_LOGIN = "pampam-bot"
COMMIT_STATES = {"error", "failure", "pending", "success"}
DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
REPO = r"/api/v3/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_request_ids = itertools.count(1)


class ApiError(Exception):
    """Raised by an action to answer with a GitHub-style error body."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **extra, "documentation_url": DOCS}


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class GitHubHandler(FaultingHandler):
    faultable = re.compile(r"^/api/")
    routes = route_table(
        {
            "GET /api/v3/user": "get_user",
            "GET /api/v3/rate_limit": "get_rate_limit",
            f"GET {REPO}": "get_repo",
            f"GET {REPO}/commits": "list_commits",
            f"GET {REPO}/commits/(?P<ref>.+)/statuses": "list_statuses",
            f"GET {REPO}/commits/(?P<ref>.+)/status": "combined_status",
            f"GET {REPO}/commits/(?P<ref>.+)": "get_commit",
            rf"GET {REPO}/compare/(?P<base>.+?)\.\.\.(?P<head>.+)": "compare",
            f"POST {REPO}/statuses/(?P<ref>[^/]+)": "create_status",
            f"GET {REPO}/statuses/(?P<ref>[^/]+)": "list_statuses",
            f"GET {REPO}/tags": "list_tags",
            f"GET {REPO}/branches": "list_branches",
            f"GET {REPO}/branches/(?P<branch>.+)": "get_branch",
            f"POST {REPO}/deployments": "create_deployment",
            f"GET {REPO}/deployments": "list_deployments",
            rf"GET {REPO}/deployments/(?P<id>\d+)": "get_deployment",
            rf"POST {REPO}/deployments/(?P<id>\d+)/statuses": "create_deployment_status",
            rf"GET {REPO}/deployments/(?P<id>\d+)/statuses": "list_deployment_statuses",
            rf"GET {REPO}/deployments/(?P<id>\d+)/statuses/(?P<sid>\d+)": "get_dep_status",
        }
    )

    # --- plumbing -------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.server.store

    @property
    def links(self) -> render.Links:
        # The Host header, so URLs match whatever host name the client used (PyGithub checks).
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return render.Links(web=f"http://{host}", api=f"http://{host}/api/v3")

    def dispatch(self) -> None:
        self._counted = None  # the rate-limit window this request was counted in
        super().dispatch()

    def invoke(self, action, params: dict) -> None:
        try:
            if self.path_only.startswith("/api/") and action != self.get_rate_limit:
                self._counted = self.store.limits.count(self.identity())
            with self.store.lock:
                action(**params)
        except ApiError as error:
            self.send_json(error.status, error.body)
        except RateLimited:
            user = self.identity().split(":", 1)[0]
            message = "API rate limit exceeded for user ID 1." if user == "token" else "API rate limit exceeded."
            self.send_json(
                403, {"message": message, "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api"}
            )

    def identity(self) -> str:
        """Whose rate limit a request uses: its token, or its address without one."""
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return f"token:{value.strip()}" if value.strip() else f"ip:{self.client_address[0]}"

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        headers = dict(headers or {})
        if status == 200 and self.command == "GET":
            etag = 'W/"' + hashlib.sha256(json.dumps(payload).encode()).hexdigest() + '"'
            headers["ETag"] = etag
            if etag in (self.headers.get("If-None-Match") or ""):
                return self.send_not_modified(etag)
        self.store.answered.append((self.command, self.path, status))
        common = {
            "X-GitHub-Request-Id": f"5A3D:{next(_request_ids):06X}:PAMPAM",
            "X-GitHub-Media-Type": "github.v3; format=json",
            **self.rate_headers(),
        }
        super().send_json(status, payload, common | headers)

    def send_not_modified(self, etag: str) -> None:
        # GitHub does not count a 304 against the limit of an authenticated request.
        if self._counted is not None and self.headers.get("Authorization"):
            self.store.limits.refund(self.identity(), self._counted)
        self.store.answered.append((self.command, self.path, 304))
        self.send_response(304)
        for name, value in {"ETag": etag, **self.rate_headers()}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def rate_headers(self) -> dict:
        limit, used, reset = self.store.limits.state(self.identity())
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Resource": "core",
        }

    def send_not_found(self) -> None:
        self.send_json(404, not_found().body)

    def send_unauthorized(self) -> None:
        message = "Bad credentials" if self.headers.get("Authorization") else "Requires authentication"
        self.send_json(401, {"message": message, "documentation_url": DOCS})

    def send_fault(self, fault) -> None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        self.send_json(fault.status, {"message": "Server Error", "documentation_url": DOCS}, headers)

    def authorized(self) -> bool:
        token = self.server.token
        if not token or not self.path_only.startswith("/api/"):
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() in ("token", "bearer") and value.strip() == token

    def repo(self, owner: str, name: str) -> Repository:
        repo = self.store.repo(owner, name)
        if repo is None:
            raise not_found()
        return repo

    def commit(self, repo: Repository, ref: str):
        commit = repo.resolve(unquote(ref))
        if commit is None:
            raise ApiError(422, f"No commit found for SHA: {unquote(ref)}")
        return commit

    def body(self) -> dict:
        try:
            body = self.read_json()
        except ValueError:
            raise ApiError(400, "Problems parsing JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return body

    def paginate(self, items: list, default: int = 30, maximum: int = 100):
        """Slice `items` by `page`/`per_page` and build GitHub's `Link` header for the rest."""
        per_page = min(max(_int(self.query_one("per_page"), default), 1), maximum)
        page = max(_int(self.query_one("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        rels = []
        if page > 1:
            rels += [("prev", page - 1)]
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("first", 1)]
        links = ", ".join(f'<{self.page_url(n)}>; rel="{rel}"' for rel, n in rels)
        return items[(page - 1) * per_page : page * per_page], ({"Link": links} if links else {})

    def page_url(self, page: int) -> str:
        query = {k: v[0] for k, v in self.query.items()} | {"page": str(page)}
        return f"{self.links.web}{urlsplit(self.path).path}?{urlencode(query)}"

    # --- users, repositories, commits -----------------------------------------------------
    def get_user(self):
        self.send_json(200, render.user(self.links, BOT_LOGIN) | {"name": "Pampam"})

    def get_rate_limit(self):
        limit, used, reset = self.store.limits.state(self.identity())
        core = {"limit": limit, "remaining": max(0, limit - used), "used": used, "reset": reset}
        self.send_json(200, {"resources": {"core": core}, "rate": core})

    def get_repo(self, owner, name):
        self.send_json(200, render.repository(self.links, self.repo(owner, name)))

    def list_commits(self, owner, name):
        repo = self.repo(owner, name)
        if not repo.commits:
            raise ApiError(409, "Git Repository is empty.")
        history = repo.history(self.commit(repo, self.query_one("sha") or repo.default_branch))
        author = self.query_one("author")
        if author:
            history = [c for c in history if author in (c.author.get("login"), c.author["email"])]
        since, until = _iso_param(self, "since"), _iso_param(self, "until")
        if since is not None:
            history = [c for c in history if c.date >= since]
        if until is not None:
            history = [c for c in history if c.date <= until]
        path = (self.query_one("path") or "").strip("/")
        if path:
            history = [c for c in history if any(_touches(f["filename"], path) for f in c.files())]
        page, headers = self.paginate(history)
        self.send_json(200, [render.commit_short(self.links, repo, c) for c in page], headers)

    def get_commit(self, owner, name, ref):
        repo = self.repo(owner, name)
        self.send_json(200, render.commit_full(self.links, repo, self.commit(repo, ref)))

    def compare(self, owner, name, base, head):
        repo = self.repo(owner, name)
        base_commit, head_commit = repo.resolve(unquote(base)), repo.resolve(unquote(head))
        if base_commit is None or head_commit is None:
            raise not_found()
        # Linear history: the merge base is the older of the two.
        ahead = repo.commits[base_commit.index + 1 : head_commit.index + 1]
        behind_by = max(base_commit.index - head_commit.index, 0)
        status = "ahead" if ahead else "behind" if behind_by else "identical"
        page, headers = self.paginate(ahead, default=250, maximum=1000)
        merge_base = repo.commits[min(base_commit.index, head_commit.index)]
        web = f"{self.links.repo_web(repo)}/compare/{base}...{head}"
        changed = {f["filename"]: f for c in ahead for f in render.files(self.links, repo, c)}
        self.send_json(
            200,
            {
                "url": f"{self.links.repo_api(repo)}/compare/{base}...{head}",
                "html_url": web,
                "permalink_url": f"{self.links.repo_web(repo)}/compare/{base_commit.sha[:7]}...{head_commit.sha[:7]}",
                "diff_url": f"{web}.diff",
                "patch_url": f"{web}.patch",
                "base_commit": render.commit_short(self.links, repo, base_commit),
                "merge_base_commit": render.commit_short(self.links, repo, merge_base),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": behind_by,
                "total_commits": len(ahead),
                "commits": [render.commit_short(self.links, repo, c) for c in page],
                "files": list(changed.values())[:300],
            },
            headers,
        )

    def list_tags(self, owner, name):
        repo = self.repo(owner, name)
        tags = sorted(repo.tags.items(), key=lambda t: repo.by_sha(t[1]).index, reverse=True)
        page, headers = self.paginate([render.tag(self.links, repo, n, s) for n, s in tags])
        self.send_json(200, page, headers)

    def list_branches(self, owner, name):
        repo = self.repo(owner, name)
        heads = sorted(repo.branch_heads().items())
        items = [render.branch(self.links, repo, n, repo.by_sha(s)) for n, s in heads]
        page, headers = self.paginate(items)
        self.send_json(200, page, headers)

    def get_branch(self, owner, name, branch):
        repo = self.repo(owner, name)
        sha = repo.branch_heads().get(unquote(branch))
        if sha is None:
            raise ApiError(404, "Branch not found")
        self.send_json(200, render.branch(self.links, repo, unquote(branch), repo.by_sha(sha)))

    # --- commit statuses ------------------------------------------------------------------
    def create_status(self, owner, name, ref):
        repo = self.repo(owner, name)
        commit = self.commit(repo, ref)
        body = self.body()
        if body.get("state") not in COMMIT_STATES:
            raise _invalid("Status", "state")
        record = {
            "id": self.store.next_id(),
            "repo": repo.full_name,
            "sha": commit.sha,
            "state": body["state"],
            "target_url": body.get("target_url"),
            "description": body.get("description"),
            "context": body.get("context") or "default",
            "created_at": now(),
            "creator": BOT_LOGIN,
        }
        self.store.statuses.append(record)
        self.send_json(201, render.commit_status(self.links, record))

    def commit_statuses(self, repo: Repository, ref: str) -> list[dict]:
        """Statuses of the commit `ref` names, newest first."""
        sha = self.commit(repo, ref).sha
        found = [s for s in self.store.statuses if s["repo"] == repo.full_name and s["sha"] == sha]
        return found[::-1]

    def list_statuses(self, owner, name, ref):
        repo = self.repo(owner, name)
        page, headers = self.paginate(self.commit_statuses(repo, ref))
        self.send_json(200, [render.commit_status(self.links, s) for s in page], headers)

    def combined_status(self, owner, name, ref):
        repo = self.repo(owner, name)
        latest = {}
        for status in self.commit_statuses(repo, ref):
            latest.setdefault(status["context"], status)
        states = {s["state"] for s in latest.values()}
        if states & {"failure", "error"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        sha = self.commit(repo, ref).sha
        self.send_json(
            200,
            {
                "state": state,
                "sha": sha,
                "total_count": len(latest),
                "statuses": [render.commit_status(self.links, s) for s in latest.values()],
                "repository": render.repository(self.links, repo),
                "commit_url": f"{self.links.repo_api(repo)}/commits/{sha}",
                "url": f"{self.links.repo_api(repo)}/commits/{sha}/status",
            },
        )

    # --- deployments ----------------------------------------------------------------------
    def create_deployment(self, owner, name):
        repo = self.repo(owner, name)
        body = self.body()
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise _invalid("Deployment", "ref", "missing_field")
        commit = repo.resolve(ref)
        if commit is None:
            raise ApiError(422, f"No ref found for: {ref}")
        self.check_required_contexts(repo, commit.sha, ref, body.get("required_contexts"))
        environment = body.get("environment") or "production"
        stamp = now()
        record = {
            "id": self.store.next_id(),
            "repo": repo.full_name,
            "sha": commit.sha,
            "ref": ref,
            "task": body.get("task") or "deploy",
            "payload": body.get("payload") or {},
            "environment": environment,
            "original_environment": environment,
            "description": body.get("description"),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(body.get("production_environment", environment == "production")),
            "creator": BOT_LOGIN,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.store.deployments.append(record)
        self.send_json(201, render.deployment(self.links, record))

    def check_required_contexts(self, repo, sha, ref, required) -> None:
        """GitHub refuses (409) to deploy a commit whose required status contexts are not green.

        Without `required_contexts`, every context reported on the commit is required; pass
        `[]` to skip the check, as GitHub documents.
        """
        latest = {}
        for status in self.commit_statuses(repo, sha):
            latest.setdefault(status["context"], status["state"])
        contexts = latest.keys() if required is None else required
        failing = [c for c in contexts if latest.get(c) != "success"]
        if failing:
            raise ApiError(
                409,
                f"Conflict: Commit status checks failed for {ref}.",
                errors=[
                    {
                        "contexts": [{"context": c, "state": latest.get(c)} for c in failing],
                        "resource": "Deployment",
                        "field": "required_contexts",
                        "code": "invalid",
                    }
                ],
            )

    def deployment(self, repo: Repository, id: str) -> dict:
        for record in self.store.deployments:
            if record["id"] == int(id) and record["repo"] == repo.full_name:
                return record
        raise not_found()

    def list_deployments(self, owner, name):
        repo = self.repo(owner, name)
        filters = {k: self.query_one(k) for k in ("sha", "ref", "task", "environment")}
        found = [
            d
            for d in self.store.deployments[::-1]
            if d["repo"] == repo.full_name and all(value in (None, "", d[key]) for key, value in filters.items())
        ]
        page, headers = self.paginate(found)
        self.send_json(200, [render.deployment(self.links, d) for d in page], headers)

    def get_deployment(self, owner, name, id):
        record = self.deployment(self.repo(owner, name), id)
        self.send_json(200, render.deployment(self.links, record))

    def create_deployment_status(self, owner, name, id):
        deployment = self.deployment(self.repo(owner, name), id)
        body = self.body()
        if body.get("state") not in DEPLOYMENT_STATES:
            raise _invalid("DeploymentStatus", "state")
        if body.get("environment"):
            deployment["environment"] = body["environment"]
        record = self.add_deployment_status(deployment, body)
        if record["state"] == "success" and body.get("auto_inactive", True):
            self.deactivate_older(deployment)
        self.send_json(201, render.deployment_status(self.links, record))

    def add_deployment_status(self, deployment: dict, body: dict) -> dict:
        # `target_url` is GitHub's legacy name for `log_url`; either sets both.
        log_url = body.get("log_url") or body.get("target_url") or ""
        record = {
            "id": self.store.next_id(),
            "deployment_id": deployment["id"],
            "repo": deployment["repo"],
            "state": body["state"],
            "description": body.get("description") or "",
            "environment": deployment["environment"],
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": body.get("environment_url") or "",
            "creator": BOT_LOGIN,
            "created_at": now(),
        }
        deployment["updated_at"] = record["created_at"]
        self.store.deployment_statuses.append(record)
        return record

    def deactivate_older(self, deployment: dict) -> None:
        """`auto_inactive`: older successful, non-transient, non-production deployments of the
        same environment get an `inactive` status (as documented by GitHub)."""
        for older in self.store.deployments:
            if (
                older["id"] < deployment["id"]
                and older["repo"] == deployment["repo"]
                and older["environment"] == deployment["environment"]
                and not older["transient_environment"]
                and not older["production_environment"]
                and self.latest_state(older) == "success"
            ):
                self.add_deployment_status(older, {"state": "inactive"})

    def latest_state(self, deployment: dict) -> str | None:
        states = [s for s in self.store.deployment_statuses if s["deployment_id"] == deployment["id"]]
        return states[-1]["state"] if states else None

    def list_deployment_statuses(self, owner, name, id):
        deployment = self.deployment(self.repo(owner, name), id)
        found = [s for s in self.store.deployment_statuses[::-1] if s["deployment_id"] == deployment["id"]]
        page, headers = self.paginate(found)
        self.send_json(200, [render.deployment_status(self.links, s) for s in page], headers)

    def get_dep_status(self, owner, name, id, sid):
        deployment = self.deployment(self.repo(owner, name), id)
        for record in self.store.deployment_statuses:
            if record["id"] == int(sid) and record["deployment_id"] == deployment["id"]:
                self.send_json(200, render.deployment_status(self.links, record))
                return
        raise not_found()


def _invalid(resource: str, field: str, code: str = "invalid") -> ApiError:
    return ApiError(422, "Validation Failed", errors=[{"resource": resource, "field": field, "code": code}])


def _iso_param(handler: "GitHubHandler", name: str) -> datetime | None:
    """An ISO 8601 timestamp query parameter (`2026-01-05T09:00:00Z`), 422 when malformed."""
    text = handler.query_one(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"Invalid value for parameter '{name}': {text}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _touches(filename: str, path: str) -> bool:
    return filename == path or filename.startswith(f"{path}/")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
