"""JSON representations of the GitHub sandbox's objects, shaped like the REST API v3 replies.

Every API URL is absolute under the sandbox's own `/api/v3` prefix, because PyGithub asserts
that URLs returned by the server stay under its `base_url` (PROTOCOLS.md §3). `Links` carries
the two roots: `web` (html_url) and `api`.
"""

from dataclasses import dataclass
from datetime import datetime

from sandbox.github.model import Commit, Repository


@dataclass(frozen=True)
class Links:
    web: str  # http://host:port
    api: str  # http://host:port/api/v3

    def repo_api(self, repo: Repository) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def repo_web(self, repo: Repository) -> str:
        return f"{self.web}/{repo.full_name}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user(links: Links, login: str | None) -> dict | None:
    if not login:
        return None
    return {
        "login": login,
        "id": sum(map(ord, login)) * 7919,
        "node_id": f"U_{login}",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
        "url": f"{links.api}/users/{login}",
        "html_url": f"{links.web}/{login}",
        "avatar_url": f"{links.web}/avatars/{login}",
    }


# Templated URLs as GitHub lists them on a repository, relative to the repository's API URL.
REPO_URL_TEMPLATES = {
    "archive_url": "/{archive_format}{/ref}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "events_url": "/events",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issues_url": "/issues{/number}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "statuses_url": "/statuses/{sha}",
    "tags_url": "/tags",
    "trees_url": "/git/trees{/sha}",
}


def repository(links: Links, repo: Repository) -> dict:
    api = links.repo_api(repo)
    created = repo.commits[0].date if repo.commits else None
    pushed = repo.head.date if repo.head else None
    return {
        "id": repo.id,
        "node_id": f"R_{repo.id}",
        "name": repo.name,
        "full_name": repo.full_name,
        "owner": user(links, repo.owner) | {"type": "Organization"},
        "private": True,
        "visibility": "private",
        "fork": False,
        "archived": False,
        "disabled": False,
        "description": f"{repo.name} (Pampam sandbox)",
        "html_url": links.repo_web(repo),
        "url": api,
        "clone_url": f"{links.repo_web(repo)}.git",
        "default_branch": repo.default_branch,
        "created_at": iso(created) if created else None,
        "updated_at": iso(pushed) if pushed else None,
        "pushed_at": iso(pushed) if pushed else None,
        "permissions": {"admin": False, "maintain": False, "push": True, "pull": True},
        **{key: api + suffix for key, suffix in REPO_URL_TEMPLATES.items()},
    }


def commit_short(links: Links, repo: Repository, commit: Commit) -> dict:
    """A commit as it appears in lists (commits, compare): without files and stats."""
    api = links.repo_api(repo)
    person = {
        "name": commit.author["name"],
        "email": commit.author["email"],
        "date": iso(commit.date),
    }
    parents = [commit.parent] if commit.parent else []
    return {
        "sha": commit.sha,
        "node_id": f"C_{commit.sha[:12]}",
        "url": f"{api}/commits/{commit.sha}",
        "html_url": f"{links.repo_web(repo)}/commit/{commit.sha}",
        "comments_url": f"{api}/commits/{commit.sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{commit.sha}",
            "message": commit.message,
            "author": person,
            "committer": person,
            "tree": {"sha": commit.sha[::-1], "url": f"{api}/git/trees/{commit.sha[::-1]}"},
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None},
        },
        "author": user(links, commit.author.get("login")),
        "committer": user(links, commit.author.get("login")),
        "parents": [
            {
                "sha": p,
                "url": f"{api}/commits/{p}",
                "html_url": f"{links.repo_web(repo)}/commit/{p}",
            }
            for p in parents
        ],
    }


def commit_full(links: Links, repo: Repository, commit: Commit) -> dict:
    changed = files(links, repo, commit)
    additions = sum(f["additions"] for f in changed)
    deletions = sum(f["deletions"] for f in changed)
    stats = {"total": additions + deletions, "additions": additions, "deletions": deletions}
    return commit_short(links, repo, commit) | {"stats": stats, "files": changed}


def files(links: Links, repo: Repository, commit: Commit) -> list[dict]:
    web = f"{links.repo_web(repo)}/blob/{commit.sha}"
    return [
        {
            "sha": f"{commit.sha[:30]}{i:010d}",
            "filename": f["filename"],
            "status": "modified",
            "additions": f["additions"],
            "deletions": f["deletions"],
            "changes": f["additions"] + f["deletions"],
            "blob_url": f"{web}/{f['filename']}",
            "raw_url": f"{links.repo_web(repo)}/raw/{commit.sha}/{f['filename']}",
            "contents_url": f"{links.repo_api(repo)}/contents/{f['filename']}?ref={commit.sha}",
            "patch": f"@@ -1,{f['deletions']} +1,{f['additions']} @@",
        }
        for i, f in enumerate(commit.files())
    ]


def tag(links: Links, repo: Repository, name: str, sha: str) -> dict:
    api = links.repo_api(repo)
    return {
        "name": name,
        "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
        "zipball_url": f"{api}/zipball/refs/tags/{name}",
        "tarball_url": f"{api}/tarball/refs/tags/{name}",
        "node_id": f"T_{sha[:12]}",
    }


def branch(links: Links, repo: Repository, name: str, commit: Commit) -> dict:
    api = links.repo_api(repo)
    return {
        "name": name,
        "commit": commit_short(links, repo, commit),
        "protected": name == repo.default_branch,
        "_links": {"self": f"{api}/branches/{name}", "html": f"{links.repo_web(repo)}/tree/{name}"},
    }


# Statuses and deployments are stored as plain records (see server.py) and rendered per request,
# so their URLs always use the host the client connected to.
def commit_status(links: Links, record: dict) -> dict:
    api = f"{links.api}/repos/{record['repo']}"
    return {
        "id": record["id"],
        "node_id": f"SC_{record['id']}",
        "url": f"{api}/statuses/{record['sha']}",
        "avatar_url": f"{links.web}/avatars/{record['creator']}",
        "state": record["state"],
        "description": record["description"],
        "target_url": record["target_url"],
        "context": record["context"],
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["created_at"]),
        "creator": user(links, record["creator"]),
    }


def deployment(links: Links, record: dict) -> dict:
    api = f"{links.api}/repos/{record['repo']}"
    url = f"{api}/deployments/{record['id']}"
    fields = ("id", "sha", "ref", "task", "payload", "environment", "original_environment")
    fields += ("description", "transient_environment", "production_environment")
    return {key: record[key] for key in fields} | {
        "node_id": f"DE_{record['id']}",
        "url": url,
        "statuses_url": f"{url}/statuses",
        "repository_url": api,
        "creator": user(links, record["creator"]),
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["updated_at"]),
    }


def deployment_status(links: Links, record: dict) -> dict:
    api = f"{links.api}/repos/{record['repo']}"
    deployment_url = f"{api}/deployments/{record['deployment_id']}"
    fields = ("id", "state", "description", "environment", "target_url", "log_url")
    return {key: record[key] for key in fields} | {
        "node_id": f"DES_{record['id']}",
        "url": f"{deployment_url}/statuses/{record['id']}",
        "environment_url": record["environment_url"],
        "deployment_url": deployment_url,
        "repository_url": api,
        "creator": user(links, record["creator"]),
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["created_at"]),
    }
