"""HTTP front of the fake Jenkins: auth, crumbs, faults, then routing to the views.

URLs follow Jenkins: `job/<a>/job/<b>/` is job `a/b`, each name percent-decoded once (so
`job/Store%20Front/` is `Store Front` and a multibranch `job/feature%252Fx/` is the item
`feature%2Fx`); what follows is the action (`api/json`, `buildWithParameters`, `createItem`,
`<n>/consoleText`, ...). An unknown job is a 404, unless the sandbox runs with `any_job`.

Authentication is HTTP Basic. With the API token no crumb is needed (Jenkins 2.96+); with the
user's password (a session-like login) a POST needs the `Jenkins-Crumb` header from
`crumbIssuer/api/json`. The `/sandbox/...` control endpoints skip auth and faults so a test can
always reach them.
"""

import base64
import hmac
import json
import time
from urllib.parse import parse_qs, unquote

from sandbox.http import JSONHandler

from . import tree, views
from .model import Build, Jenkins

VERSION = "2.462.3"
NO_CRUMB = "No valid crumb was included in the request"
BUILD_ALIASES = (
    "lastBuild",
    "lastCompletedBuild",
    "lastSuccessfulBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastUnsuccessfulBuild",
)
# Query/form keys Jenkins itself consumes instead of passing to the build.
RESERVED_PARAMS = {"token", "delay", "cause", "Jenkins-Crumb", "json"}
CONFIG_XML = """<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <description>A pipeline of the pampam sandbox Jenkins (its steps are scripted by the sandbox).</description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <triggers/>
  <disabled>false</disabled>
</flow-definition>
"""


def split_job_path(parts: list[str]) -> tuple[str, list[str]]:
    """`["job","a","job","b","3","api","json"]` → `("a/b", ["3","api","json"])`."""
    names = []
    while len(parts) >= 2 and parts[0] == "job":
        names.append(parts[1])
        parts = parts[2:]
    return "/".join(names), parts


class JenkinsHandler(JSONHandler):
    server_version = "Jetty(10.0.20)"

    @property
    def state(self) -> Jenkins:
        return self.server.jenkins

    @property
    def runner(self):
        return self.server.runner

    def version_string(self) -> str:
        return self.server_version  # Jenkins' Jetty doesn't append a Python version

    def end_headers(self):
        # Every Jenkins reply carries its version; python-jenkins' get_version reads it.
        self.send_header("X-Jenkins", VERSION)
        self.send_header("X-Jenkins-Session", "sandbox0")
        super().end_headers()

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        parts = [unquote(p) for p in self.path_only.split("/") if p]
        # Read the body up front: early replies (faults, 401, 403) must not leave it in the
        # socket, or the next keep-alive request on this connection would be garbled.
        self.body = self.read_body()
        with self.state.lock:
            self.state.requests.append((self.command, self.path))
        if parts[:1] == ["sandbox"]:
            return self._control(parts[1:])
        if self._fault_applied():
            return
        if parts == [] and self.command in ("GET", "HEAD"):
            return self.send_text(200, "<html><body>Dashboard [Jenkins]</body></html>", "text/html")
        user, by_token = self._authenticate()
        if user is None:
            return
        if self.command == "POST" and not by_token and not self._crumb_ok():
            return self.send_error_page(403, NO_CRUMB)
        self.user = user
        try:
            self._route(parts)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fault_applied(self) -> bool:
        with self.state.lock:
            fault = self.state.faults.take()
        if fault is None:
            return False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.down:
            self.close_connection = True  # drop the socket without a reply
            return True
        if fault.status:
            self.send_error_page(fault.status, "Sandbox fault")
            return True
        return False

    def _authenticate(self) -> tuple[str | None, bool]:
        """(user, authenticated by API token) or (None, False) after answering 401."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, secret = "", ""
            if user == self.state.user and hmac.compare_digest(secret, self.state.token):
                return user, True
            password = self.state.password
            if user == self.state.user and password and hmac.compare_digest(secret, password):
                return user, False
            message = f"Invalid password/token for user: {user}"
        else:
            message = "Authentication required"
        self.send_error_page(401, message, {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        return None, False

    def _crumb_ok(self) -> bool:
        crumb = self.headers.get("Jenkins-Crumb") or self.query_one("Jenkins-Crumb") or ""
        return hmac.compare_digest(crumb, self.state.crumb)

    def send_text(self, status: int, text: str, ctype: str = "text/plain;charset=UTF-8", headers=None):
        self.send_bytes(status, text.encode("utf-8"), ctype, headers)

    def send_error_page(self, status: int, reason: str, headers: dict | None = None) -> None:
        """Jetty-style error page, with the message as the HTTP reason phrase like Jenkins."""
        body = f"<html><body><h2>HTTP ERROR {status} {reason}</h2></body></html>".encode()
        self.send_bytes(status, body, "text/html;charset=utf-8", headers, reason)

    def not_found(self) -> None:
        self.send_error_page(404, "Not Found")

    # -- routes -----------------------------------------------------------------------------

    def _route(self, parts: list[str]) -> None:
        if parts[:1] == ["job"]:
            return self._job_route(*split_job_path(parts))
        if parts == ["createItem"] and self.command == "POST":
            return self._create_item("")
        if parts[:1] == ["computer"]:
            return self._computer_route(parts[1:])
        simple = {
            ("api", "json"): lambda depth: views.hudson(self.state, depth),
            ("crumbIssuer", "api", "json"): lambda depth: self._crumb(),
            ("me", "api", "json"): lambda depth: views.whoami(self.state, self.user),
            ("queue", "api", "json"): lambda depth: views.queue(self.state),
        }
        if tuple(parts) in simple and self.command == "GET":
            return self._send_api(simple[tuple(parts)])
        if parts == ["queue", "cancelItem"] and self.command == "POST":
            return self._cancel_item()
        if len(parts) == 5 and parts[:2] == ["queue", "item"] and parts[3:] == ["api", "json"]:
            return self._queue_item(parts[2])
        self.not_found()

    def _send_api(self, document) -> None:
        """Answer `.../api/json`: `document(depth)` built deep enough for `tree`, then filtered."""
        raw_depth, raw_tree = self.query_one("depth", "0"), self.query_one("tree")
        depth = int(raw_depth) if raw_depth.isdigit() else 0
        if not raw_tree:
            return self.send_json(200, document(depth))
        try:
            spec = tree.parse(raw_tree)
        except tree.TreeError as error:
            return self.send_error_page(400, str(error))
        self.send_json(200, tree.apply(document(max(depth, tree.depth(spec))), spec))

    def _computer_route(self, rest: list[str]) -> None:
        """`computer/api/json` (all nodes) and `computer/<node>/api/json` for the built-in node,
        by its current name `(built-in)`, its old `(master)` or its display name."""
        if rest == ["api", "json"] and self.command == "GET":
            return self._send_api(lambda depth: views.computer_set(self.state, depth))
        if len(rest) == 3 and rest[1:] == ["api", "json"] and rest[0] in ("(built-in)", "(master)", views.BUILT_IN):
            return self._send_api(lambda depth: views.computer(self.state, depth))
        self.not_found()

    def _crumb(self) -> dict:
        return {
            "_class": "hudson.security.csrf.DefaultCrumbIssuer",
            "crumb": self.state.crumb,
            "crumbRequestField": "Jenkins-Crumb",
        }

    def _queue_item(self, raw_id: str) -> None:
        item = self.state.queue.get(int(raw_id)) if raw_id.isdigit() else None
        if item is None:
            return self.not_found()
        with self.state.lock:
            doc = views.queue_item(self.state, item)
        self.send_json(200, doc)

    def _cancel_item(self) -> None:
        raw_id = self.query_one("id", "")
        if not raw_id.isdigit() or int(raw_id) not in self.state.queue:
            return self.not_found()
        self.state.cancel(int(raw_id))
        # Jenkins redirects to the queue page; a 204 keeps clients from following anything.
        self.send_bytes(204, b"", "text/plain")

    def _job_route(self, name: str, rest: list[str]) -> None:
        record = self.state.find_job(name) if name else None
        if record is None:
            return self.not_found()
        if self.state.is_folder(name):
            return self._folder_route(name, rest)
        if rest in ([], ["api", "json"]) and self.command == "GET":
            return self._send_api(lambda depth: views.job(self.state, name, depth))
        if rest in (["build"], ["buildWithParameters"]) and self.command == "POST":
            return self._trigger(name)
        if rest == ["doDelete"] and self.command == "POST":
            self.state.delete_job(name)
            return self.send_bytes(200, b"", "text/plain")
        if rest == ["config.xml"] and self.command == "GET":
            return self.send_text(200, CONFIG_XML, "application/xml")
        if rest and (rest[0].isdigit() or rest[0] in BUILD_ALIASES):
            build = self.state.get_build(name, rest[0])
            if build is None:
                return self.not_found()
            return self._build_route(build, rest[1:])
        self.not_found()

    def _folder_route(self, name: str, rest: list[str]) -> None:
        if rest in ([], ["api", "json"]) and self.command == "GET":
            return self._send_api(lambda depth: views.folder(self.state, name, depth))
        if rest == ["createItem"] and self.command == "POST":
            return self._create_item(name)
        if rest == ["doDelete"] and self.command == "POST":
            self.state.delete_job(name)
            return self.send_bytes(200, b"", "text/plain")
        if rest in (["build"], ["buildWithParameters"]):
            return self.send_error_page(405, f"{name} is a folder: it cannot be built")
        self.not_found()

    def _create_item(self, parent: str) -> None:
        """`createItem?name=X` with a config.xml body: a folder when the XML is one, else a job."""
        short = self.query_one("name", "")
        if not short or "/" in short:
            return self.send_error_page(400, "No name is specified" if not short else f"Unsafe name: {short}")
        name = f"{parent}/{short}" if parent else short
        is_folder = b"com.cloudbees.hudson.plugins.folder.Folder" in self.body
        if self.state.create_job(name, is_folder) is None:
            return self.send_error_page(400, f"A job already exists with the name ‘{short}’")
        self.send_bytes(200, b"", "text/plain")

    def _trigger(self, name: str) -> None:
        params = {k: v[-1] for k, v in self.query.items()}
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        params = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
        item = self.runner.submit(name, params, self.user)
        location = f"{self.state.root_url}/queue/item/{item.id}/"
        self.send_bytes(201, b"", "text/plain", {"Location": location})

    def _build_route(self, build: Build, rest: list[str]) -> None:
        if rest in ([], ["api", "json"]) and self.command == "GET":
            return self._send_api(lambda depth: views.build(self.state, build, depth))
        if rest == ["consoleText"] and self.command == "GET":
            with self.state.lock:
                body = bytes(build.log)
            return self.send_bytes(200, body, "text/plain;charset=UTF-8")
        if rest == ["testReport", "api", "json"] and build.tests is not None:
            return self.send_json(200, views.test_report(build))
        if rest == ["logText", "progressiveText"] and self.command == "GET":
            return self._progressive(build)
        if rest == ["stop"] and self.command == "POST":
            self.runner.stop(build, self.user)
            return self.send_bytes(200, b"", "text/plain")
        if rest[:1] == ["artifact"] and "/".join(rest[1:]) in build.config.artifacts:
            return self.send_text(200, f"sandbox artifact {'/'.join(rest[1:])}\n")
        self.not_found()

    def _progressive(self, build: Build) -> None:
        """stapler LargeText.doProgressText: byte offsets, whole lines only while running."""
        raw_start = self.query_one("start", "0")
        start = int(raw_start) if raw_start.isdigit() else 0
        with self.state.lock:
            log, running = bytes(build.log), build.building
        if start > len(log):
            start = 0  # the log rolled over
        end = log.rfind(b"\n") + 1 if running else len(log)
        end = max(end, start)
        headers = {"X-Text-Size": str(end)}
        if running:
            headers["X-More-Data"] = "true"
        self.send_bytes(200, log[start:end], "text/plain;charset=UTF-8", headers)

    # -- sandbox control --------------------------------------------------------------------

    def _control(self, parts: list[str]) -> None:
        if parts == ["faults"] and self.command == "POST":
            try:
                self.server.handle.set_fault(**(json.loads(self.body) if self.body else {}))
            except (TypeError, ValueError) as error:
                return self.send_json(400, {"error": str(error)})
            return self.send_json(200, {"ok": True})
        if parts == ["faults"] and self.command == "DELETE":
            self.server.handle.clear_faults()
            return self.send_json(200, {"ok": True})
        if parts == ["builds"] and self.command == "GET":
            return self.send_json(200, [b.snapshot() for b in self.state.all_builds()])
        self.send_json(404, {"error": "unknown sandbox endpoint"})
