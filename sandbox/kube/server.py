"""The HTTP face of the fake apiserver: routing, discovery, CRUD, PATCH, watch and Tables.

Paths served (`{ns}` namespaced; the same list/watch without `namespaces/{ns}` spans all
namespaces):

    /version  /api  /apis  /api/v1  /apis/apps/v1
    /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}[/{name}[/scale|/status]]
    /api/v1/namespaces/{ns}/{pods|events}[/{name}[/status]]
    /api/v1/namespaces[/{name}]
    POST /sandbox/compact        forget the watch history (next old-RV watch gets 410)
    GET  /sandbox/requests       the last requests seen (method, path, headers), for debugging

The server attributes set through `serve()` are `cluster`, `token` (optional bearer token),
`bookmark_interval` (seconds between watch BOOKMARKs), `too_large_wait` (how long a read from a
resourceVersion the store has not reached waits before its 504), `requests_log` (a deque) and
`verbose`.

`KubeServer` keeps every accepted connection so that `drop_connections()` can end them all at once,
as the exit of a real apiserver does: open watches stop mid-stream and kept-alive connections close.
"""

import json
import queue
import socket
import sys
import threading
import time

from sandbox.http import JSONHandler, Server

from . import protobuf, tables
from .errors import ApiError, bad_request, too_large_resource_version
from .patch import apply_patch
from .selectors import parse_field_selector, parse_label_selector, selector_string
from .store import KINDS, Kind, matches

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
IN_ALL = {"deployments", "replicasets", "pods"}
MAX_WATCH_SECONDS = 1800
# Readable without credentials, as on a real apiserver (the kubectl dispatcher sends none).
PUBLIC_PATHS = {"/version", "/healthz", "/livez", "/readyz"}


DEFAULT_TOO_LARGE_WAIT = 3.0  # the watch cache's blockTimeout


class KubeServer(Server):
    """The HTTP server, tracking its connections and watches so they can all be dropped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conn_lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.watchers: list = []  # store Watchers of the open watch requests
        self.stopping = False

    def process_request(self, request, client_address):
        with self.conn_lock:
            if self.stopping:
                return self.shutdown_request(request)
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError | ValueError) and (
            self.stopping or isinstance(sys.exc_info()[1], ConnectionError)
        ):
            return  # a dropped connection, not a bug
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Close every accepted connection (both ways) and wake every watch so it ends."""
        with self.conn_lock:
            self.stopping = True
            connections, watchers = list(self.connections), list(self.watchers)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        for watcher in watchers:
            watcher.events.put(None)  # wakes the pump, which then returns


# ------------------------------------------------------------------ discovery
def resource_list(group: str) -> dict:
    version = f"{group}/v1" if group else "v1"
    resources = []
    for kind in KINDS.values():
        if kind.group != group:
            continue
        entry = {
            "name": kind.resource,
            "singularName": kind.kind.lower(),
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": VERBS if kind.resource != "namespaces" else [*VERBS[:1], *VERBS[2:]],
            "shortNames": list(kind.short_names),
        }
        if kind.resource in IN_ALL:
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub in kind.subresources:
            resources.append(
                {
                    "name": f"{kind.resource}/{sub}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": "Scale" if sub == "scale" else kind.kind,
                    "verbs": ["get", "patch", "update"],
                    **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": version,
        "resources": resources,
    }


API_VERSIONS = {
    "kind": "APIVersions",
    "versions": ["v1"],
    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
}
API_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }
    ],
}
DISCOVERY = {
    "/api": API_VERSIONS,
    "/apis": API_GROUPS,
    "/api/v1": resource_list(""),
    "/apis/apps/v1": resource_list("apps"),
    "/version": VERSION,
}


class Route:
    """A parsed resource path."""

    def __init__(self, kind: Kind, namespace: str | None, name: str | None, sub: str | None):
        self.kind, self.namespace, self.name, self.sub = kind, namespace, name, sub

    @classmethod
    def parse(cls, path: str) -> "Route | None":
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
            group, rest = parts[1], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in KINDS:
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in KINDS or len(rest) > 3:
            return None
        kind = KINDS[rest[0]]
        if kind.group != group or (namespace is not None and not kind.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in kind.subresources:
            return None
        return cls(kind, namespace, name, sub)


def scale_view(obj: dict) -> dict:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": obj["spec"].get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string(obj["spec"].get("selector")),
        },
    }


class KubeHandler(JSONHandler):
    """Request handler; all state lives on `self.server` (see the module docstring)."""

    # ------------------------------------------------------------- plumbing
    @property
    def cluster(self):
        return self.server.cluster

    def _record(self) -> None:
        entry = {
            "method": self.command,
            "path": self.path,
            "accept": self.headers.get("Accept", ""),
            "content_type": self.headers.get("Content-Type", ""),
            "user_agent": self.headers.get("User-Agent", ""),
            "authorized": bool(self.headers.get("Authorization")),
        }
        self.server.requests_log.append(entry)
        if getattr(self.server, "verbose", False):
            print(f"kube: {entry}", file=sys.stderr, flush=True)

    def _dispatch(self) -> None:
        self._record()
        # Read the body first, so an error reply never leaves it unread on a kept-alive socket.
        self._raw_body = self.read_body()
        try:
            self._authorize()
            self._route()
        except ApiError as err:
            self.send_json(err.code, err.status())
        except ConnectionError:
            pass  # the client went away
        except OSError:
            if not self.server.stopping:
                raise  # (a connection dropped by drop_connections() is expected)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _authorize(self) -> None:
        token = getattr(self.server, "token", None)
        if self.path_only in PUBLIC_PATHS:
            return  # like system:public-info-viewer on a real apiserver
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _body(self):
        """The request body as JSON (decoding kubectl's protobuf bodies too)."""
        body = self._raw_body
        try:
            if "protobuf" in self.headers.get("Content-Type", ""):
                return protobuf.decode(body)
            return json.loads(body) if body else None
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc

    def _object_body(self) -> dict:
        body = self._body()
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return body

    def _reply_object(self, status: int, resource: str, obj: dict) -> None:
        if tables.wants_table(self.headers.get("Accept")):
            include = self.query_one("includeObject", "Metadata")
            rv = obj["metadata"].get("resourceVersion", "")
            self.send_json(status, tables.table(resource, [obj], rv, include))
        else:
            self.send_json(status, obj)

    # ---------------------------------------------------------------- routing
    def _route(self) -> None:
        path = self.path_only.rstrip("/") or "/"
        if path in DISCOVERY and self.command == "GET":
            return self.send_json(200, DISCOVERY[path])
        if path in PUBLIC_PATHS:
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if path.startswith("/sandbox/"):
            return self._sandbox(path)
        route = Route.parse(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        handler = {
            "GET": self._get,
            "POST": self._create,
            "PUT": self._replace,
            "PATCH": self._patch,
            "DELETE": self._delete,
        }[self.command]
        if route.name is None and self.command not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if route.name is not None and self.command == "POST":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        handler(route)

    def _sandbox(self, path: str) -> None:
        if path == "/sandbox/compact" and self.command == "POST":
            return self.send_json(200, {"resourceVersion": str(self.cluster.compact())})
        if path == "/sandbox/requests":
            return self.send_json(200, list(self.server.requests_log))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ------------------------------------------------------------------ verbs
    def _get(self, route: Route) -> None:
        if route.name is None and self.query_one("watch") in ("true", "1", "True"):
            return self._watch(route)
        self._wait_fresh()
        if route.name is None:
            return self._list(route)
        obj = self.cluster.get(route.kind.resource, route.namespace, route.name)
        if route.sub == "scale":
            return self.send_json(200, scale_view(obj))
        self._reply_object(200, route.kind.resource, obj)

    def _wait_fresh(self) -> None:
        """A get or list with a resourceVersion (other than "0") reads state at least that new:
        if the store is behind, wait for it a while, then 504 "Too large resource version",
        as the watch cache does (resourceVersionMatch NotOlderThan, or unset)."""
        text = self.query_one("resourceVersion")
        if text in (None, "", "0"):
            return
        try:
            wanted = int(text)
        except ValueError:
            raise bad_request(f"invalid resource version: {text}") from None
        wait = getattr(self.server, "too_large_wait", DEFAULT_TOO_LARGE_WAIT)
        if not self.cluster.wait_fresh(wanted, wait):
            raise too_large_resource_version(wanted, self.cluster.rv)

    def _list(self, route: Route) -> None:
        kind = route.kind
        items, rv = self.cluster.list(
            kind.resource,
            route.namespace,
            self.query_one("labelSelector"),
            self.query_one("fieldSelector"),
        )
        if tables.wants_table(self.headers.get("Accept")):
            include = self.query_one("includeObject", "Metadata")
            return self.send_json(200, tables.table(kind.resource, items, rv, include))
        self.send_json(
            200,
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            },
        )

    def _create(self, route: Route) -> None:
        body = self._object_body()
        namespace = route.namespace
        if route.kind.namespaced:
            namespace = namespace or (body.get("metadata") or {}).get("namespace") or "default"
            body_ns = (body.get("metadata") or {}).get("namespace")
            if route.namespace and body_ns and body_ns != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        obj = self.cluster.create(route.kind.resource, namespace or "", body)
        self._reply_object(201, route.kind.resource, obj)

    def _replace(self, route: Route) -> None:
        body = self._object_body()
        resource = route.kind.resource
        with self.cluster.lock:
            if route.sub == "scale":
                return self._write_scale(route, body)
            obj = self.cluster.replace(resource, route.namespace, route.name, body, route.sub)
        self._reply_object(200, resource, obj)

    def _patch(self, route: Route) -> None:
        patch = self._body()
        resource = route.kind.resource
        content_type = self.headers.get("Content-Type", "")
        with self.cluster.lock:
            current = self.cluster.get(resource, route.namespace, route.name)
            if route.sub == "scale":
                return self._write_scale(route, apply_patch(content_type, scale_view(current), patch))
            patched = apply_patch(content_type, current, patch)
            if not isinstance(patched, dict):
                raise bad_request("the patch did not produce an object")
            obj = self.cluster.replace(resource, route.namespace, route.name, patched, route.sub)
        self._reply_object(200, resource, obj)

    def _write_scale(self, route: Route, scale: dict) -> None:
        current = self.cluster.get(route.kind.resource, route.namespace, route.name)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv:
            current["metadata"]["resourceVersion"] = sent_rv
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{route.name}" is invalid: spec.replicas')
        current["spec"]["replicas"] = replicas
        obj = self.cluster.replace(route.kind.resource, route.namespace, route.name, current)
        self.send_json(200, scale_view(obj))

    def _delete(self, route: Route) -> None:
        body = self._body() or {}
        propagation = self.query_one("propagationPolicy") or body.get("propagationPolicy") or "Background"
        obj = self.cluster.delete(route.kind.resource, route.namespace, route.name, propagation)
        if route.kind.resource == "pods":
            return self.send_json(200, obj)
        self.send_json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": route.name,
                    "group": route.kind.group,
                    "kind": route.kind.resource,
                    "uid": obj["metadata"]["uid"],
                },
            },
        )

    # ------------------------------------------------------------------ watch
    def _watch(self, route: Route) -> None:
        kind = route.kind
        labels_text, fields_text = self.query_one("labelSelector"), self.query_one("fieldSelector")
        labels = parse_label_selector(labels_text) if labels_text else None
        fields = parse_field_selector(fields_text) if fields_text else None
        as_table = tables.wants_table(self.headers.get("Accept"))
        timeout = float(self.query_one("timeoutSeconds") or MAX_WATCH_SECONDS)
        bookmarks = self.query_one("allowWatchBookmarks") in ("true", "1", "True")
        stream = WatchStream(self, kind, as_table, self.query_one("includeObject", "Metadata"))
        try:
            watcher, initial = self.cluster.watch(kind.resource, route.namespace, self.query_one("resourceVersion"))
        except ApiError as err:
            if err.code != 410:
                raise
            stream.start()
            stream.send("ERROR", err.status())
            return stream.end()
        server = self.server
        with server.conn_lock:
            server.watchers.append(watcher)
            stopping = server.stopping
        try:
            if stopping:
                return  # the server is going away: drop the request
            stream.start()
            self._pump(stream, watcher, initial, labels, fields, timeout, bookmarks)
        finally:
            with server.conn_lock:
                server.watchers.remove(watcher)
            self.cluster.unwatch(watcher)
        if not server.stopping:
            stream.end()

    def _pump(self, stream, watcher, initial, labels, fields, timeout, bookmarks) -> None:
        deadline = time.monotonic() + timeout
        interval = getattr(self.server, "bookmark_interval", 1.0)
        next_bookmark = time.monotonic() + interval
        for event in initial:
            stream.event(event, labels, fields)
        while not self.cluster.closed and not self.server.stopping:
            now = time.monotonic()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                self._bookmark(stream, watcher)
                next_bookmark = now + interval
            try:
                wait = min(deadline, next_bookmark if bookmarks else deadline) - now
                event = watcher.events.get(timeout=max(0.0, min(wait, 0.5)))
            except queue.Empty:
                continue
            if event is None:  # drop_connections()
                return
            if event.rv > watcher.since:  # the watch cache sends only events newer than the watch
                stream.event(event, labels, fields)

    def _bookmark(self, stream, watcher) -> None:
        # Only when nothing is queued, so the bookmark RV never skips an undelivered event.
        with self.cluster.lock:
            if not watcher.events.empty() or self.cluster.rv < watcher.since:
                return  # nor a bookmark older than the watch's own resourceVersion
            rv = str(self.cluster.rv)
        kind = stream.kind
        stream.send(
            "BOOKMARK",
            {
                "kind": kind.kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": rv},
            },
        )


class WatchStream:
    """Writes watch events as chunked JSON lines, one flushed chunk per event."""

    def __init__(self, handler: KubeHandler, kind: Kind, as_table: bool, include: str):
        self.handler, self.kind, self.as_table, self.include = handler, kind, as_table, include
        self.sent_columns = False

    def start(self) -> None:
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache, private")
        h.end_headers()
        h.wfile.flush()

    def event(self, event, labels, fields) -> None:
        """Send one store event, turning selector transitions into ADDED / DELETED."""
        now_matches = matches(event.obj, labels, fields)
        if event.type != "MODIFIED" or event.old is None:
            if now_matches:
                self.send(event.type, event.obj)
            return
        was_matching = matches(event.old, labels, fields)
        if now_matches and was_matching:
            self.send("MODIFIED", event.obj)
        elif now_matches:
            self.send("ADDED", event.obj)
        elif was_matching:
            self.send("DELETED", event.obj)

    def send(self, type_: str, obj: dict) -> None:
        if self.as_table and type_ not in ("ERROR", "BOOKMARK"):
            rv = obj["metadata"].get("resourceVersion", "")
            obj = tables.table(self.kind.resource, [obj], rv, self.include, columns=not self.sent_columns)
            self.sent_columns = True
        line = json.dumps({"type": type_, "object": obj}).encode() + b"\n"
        wfile = self.handler.wfile
        wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        wfile.flush()

    def end(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()
