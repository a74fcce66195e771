"""The HTTP face of the fake apiserver: routing, CRUD, PATCH, apply, watch, logs and Tables.

Paths served (`{ns}` namespaced; the same list/watch without `namespaces/{ns}` spans all
namespaces):

    /version  /api  /apis  /api/v1  /apis/{apps,authorization.k8s.io,authentication.k8s.io}/v1
    /openapi/v2 (JSON or protobuf)  /openapi/v3  /openapi/v3/{api/v1,apis/apps/v1,…}
    /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}[/{name}[/scale|/status]]
    /api/v1/namespaces/{ns}/{pods|events}[/{name}[/status]]
    /api/v1/namespaces/{ns}/pods/{name}/log     the kubelet stand-in's container lines
    /api/v1/namespaces/{ns}/pods/{name}/{exec,attach,portforward}   400: not supported here
    /api/v1/namespaces[/{name}]
    /api/v1/namespaces/{ns}/{serviceaccounts|configmaps|secrets|services|persistentvolumeclaims}[/{name}]
    /apis/{coordination.k8s.io/v1/leases, rbac.authorization.k8s.io/v1/{roles,rolebindings},
           batch/v1/jobs, policy/v1/poddisruptionbudgets, autoscaling/v2/horizontalpodautoscalers,
           security.istio.io/v1/peerauthentications, networking.istio.io/v1/{virtualservices,
           destinationrules}} under namespaces/{ns}/…   stored as sent (store.KINDS)
    POST /apis/authorization.k8s.io/v1/{selfsubjectaccessreviews,selfsubjectrulesreviews}
    POST /apis/authentication.k8s.io/v1/selfsubjectreviews
    POST /sandbox/compact        forget the watch history (next old-RV watch gets 410)
    GET  /sandbox/traffic/{ns}/{deployment}[/…]   the Deployment's load balancer (traffic.py)
    GET  /metrics                what the pods served, in Prometheus's text format (traffic.py)
    GET  /sandbox/requests       the last requests seen (method, path, headers), for debugging

Every write honours `dryRun=All` (validated and answered like the real thing, nothing stored),
`fieldManager` (recorded in `metadata.managedFields`) and `fieldValidation` (Strict / Warn /
Ignore); PATCH takes JSON, merge, strategic merge and apply (`application/apply-patch+yaml`,
server-side apply with conflicts and `force`) patches. Lists take `limit` / `continue` and
`resourceVersionMatch`.

The server attributes set through `serve()` are `cluster`, `kubelet`, `token` (optional bearer
token), `traffic` (traffic.Traffic), `bookmark_interval` (seconds between watch BOOKMARKs),
`too_large_wait` (how long a read from a resourceVersion the store has not reached waits before
its 504), `requests_log` (a deque) and `verbose`.

`KubeServer` keeps every accepted connection so that `drop_connections()` can end them all at once,
as the exit of a real apiserver does: open watches stop mid-stream and kept-alive connections close.
"""

import json
import queue
import socket
import sys
import threading
import time

import yaml

from sandbox.http import JSONHandler, Server

from . import openapi, protobuf, reviews, tables, traffic, validation
from .discovery import CRD_PATH, DISCOVERY, POD_CONNECT
from .errors import ApiError, bad_request, too_large_resource_version
from .kubelet import iso_nano
from .patch import APPLY_PATCH, apply_patch
from .selectors import parse_field_selector, parse_label_selector, selector_string
from .store import KINDS, Kind, matches

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


class Route:
    """A parsed resource path."""

    def __init__(self, kind: Kind, namespace: str | None, name: str | None, sub: str | None):
        self.kind, self.namespace, self.name, self.sub = kind, namespace, name, sub

    @classmethod
    def parse(cls, path: str) -> "Route | None":
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in KINDS:
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in KINDS or len(rest) > 3:
            return None
        kind = KINDS[rest[0]]
        if kind.api_version != api_version or (namespace is not None and not kind.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        connect = kind.resource == "pods" and sub in POD_CONNECT
        if sub is not None and sub not in kind.subresources and not connect:
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


def default_manager(user_agent: str) -> str:
    """The field manager of a write without `fieldManager`: the User-Agent up to its first "/"."""
    return (user_agent or "unknown").split("/")[0][:128]


class WriteOptions:
    """The query options every write takes: dryRun, fieldManager, fieldValidation (and force)."""

    def __init__(self, handler: "KubeHandler"):
        query = handler.query
        self.dry_run = validation.check_dry_run(query.get("dryRun", []))
        self.directive = validation.check_field_validation(handler.query_one("fieldValidation"))
        manager = handler.query_one("fieldManager")
        if manager is not None and (len(manager) > 128 or not manager.isprintable()):
            raise ApiError(
                422,
                "Invalid",
                "fieldManager: Invalid value: the field manager must be printable and at most 128 characters",
            )
        self.explicit_manager = manager or ""
        self.manager = manager or default_manager(handler.headers.get("User-Agent", ""))
        force = handler.query_one("force")
        self.force = force in ("true", "True", "1")


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
        self._warnings: list[str] = []
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

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        headers = dict(headers or {})
        if self._warnings:
            # One Warning header per warning: `299 - "<text>"` (RFC 7234 warn-code 299).
            headers["Warning"] = ", ".join(f"299 - {json.dumps(w)}" for w in self._warnings)
        super().send_json(status, payload, headers)

    def _authorize(self) -> None:
        token = getattr(self.server, "token", None)
        if self.path_only in PUBLIC_PATHS:
            return  # like system:public-info-viewer on a real apiserver
        if self.path_only == "/metrics" or self.path_only.startswith(traffic.PREFIX):
            return  # the workloads' own endpoints, not the API: no API credentials
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _body(self):
        """The request body as JSON (decoding kubectl's protobuf bodies, and YAML for apply)."""
        body = self._raw_body
        content_type = self.headers.get("Content-Type", "")
        try:
            if "protobuf" in content_type:
                return protobuf.decode(body)
            if "yaml" in content_type:
                return yaml.safe_load(body) if body else None
            return json.loads(body) if body else None
        except (ValueError, IndexError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc

    def _object_body(self) -> dict:
        body = self._body()
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return body

    def _typed_body(self, type_name: str, options: WriteOptions) -> dict:
        """The body checked against its type: unknown fields dropped, or refused under Strict."""
        body = self._object_body()
        self._warnings += validation.decode(body, type_name, options.directive)
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
        if self._route_special(path):
            return
        review = self._review_route(path)
        if review is not None:
            return self._review(*review)
        route = Route.parse(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.sub in POD_CONNECT:
            return self._connect(route)
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

    def _route_special(self, path: str) -> bool:
        """Discovery, health, OpenAPI, the sandbox's own endpoints and CRDs; True if answered."""
        get = self.command == "GET"
        if path in DISCOVERY and get:
            self.send_json(200, DISCOVERY[path])
        elif path in PUBLIC_PATHS:
            self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        elif path.startswith("/openapi/") and get:
            self._openapi(path)
        elif path == "/metrics" and get:
            body = self.server.traffic.exposition().encode()
            self.send_bytes(200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif path.startswith(traffic.PREFIX) and get:
            traffic.serve(self, self.server.traffic, path)
        elif path.startswith("/sandbox/"):
            self._sandbox(path)
        elif path.startswith(CRD_PATH) and get:
            self._custom_resource_definitions(path)
        else:
            return False
        return True

    def _sandbox(self, path: str) -> None:
        if path == "/sandbox/compact" and self.command == "POST":
            return self.send_json(200, {"resourceVersion": str(self.cluster.compact())})
        if path == "/sandbox/requests":
            return self.send_json(200, list(self.server.requests_log))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _custom_resource_definitions(self, path: str) -> None:
        """None are defined: an empty list, and NotFound for any name."""
        if path != CRD_PATH:
            name = path.rsplit("/", 1)[-1]
            raise ApiError(
                404,
                "NotFound",
                f'customresourcedefinitions.apiextensions.k8s.io "{name}" not found',
                {"name": name, "group": "apiextensions.k8s.io", "kind": "customresourcedefinitions"},
            )
        rv = str(self.cluster.rv)
        if tables.wants_table(self.headers.get("Accept")):
            columns = [tables.col("Name", fmt="name"), tables.col("Created At", "date")]
            return self.send_json(
                200,
                {
                    "kind": "Table",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": rv},
                    "columnDefinitions": columns,
                    "rows": [],
                },
            )
        self.send_json(
            200,
            {
                "kind": "CustomResourceDefinitionList",
                "apiVersion": "apiextensions.k8s.io/v1",
                "metadata": {"resourceVersion": rv},
                "items": [],
            },
        )

    def _openapi(self, path: str) -> None:
        """`/openapi/v2` (JSON or protobuf) and `/openapi/v3[/<group-version>]`."""
        if path == "/openapi/v2":
            accept = self.headers.get("Accept", "")
            if "protobuf" in accept:
                # kube-openapi answers the older "…spec.v2@v1.0+protobuf" (what client-go asks
                # for) as octet-stream: Go's mime parser cannot read an "@" in a media type.
                media = openapi.V2_PROTOBUF if openapi.V2_PROTOBUF in accept else "application/octet-stream"
                return self.send_bytes(200, openapi.v2_protobuf(), media)
            return self.send_bytes(200, openapi.v2_bytes(), "application/json")
        if path == "/openapi/v3":
            return self.send_bytes(200, openapi.v3_index(), "application/json")
        group_version = path.removeprefix("/openapi/v3/")
        if group_version in openapi.group_versions():
            headers = {"Etag": f'"{openapi.v3_hash(group_version)}"'}
            if self.query_one("hash"):
                headers["Cache-Control"] = "public, immutable"
            return self.send_bytes(200, openapi.v3_document(group_version), "application/json", headers)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ----------------------------------------------------------------- reviews
    @staticmethod
    def _review_route(path: str):
        parts = [p for p in path.split("/") if p]
        if len(parts) == 4 and parts[0] == "apis":
            key = (f"{parts[1]}/{parts[2]}", parts[3])
            if key in reviews.REVIEWS:
                return key
        return None

    def _review(self, group_version: str, resource: str) -> None:
        if self.command != "POST":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        kind, answer = reviews.REVIEWS[(group_version, resource)]
        options = WriteOptions(self)
        body = self._typed_body(kind, options)
        self.send_json(201, answer(body, group_version))

    # ------------------------------------------------------------------ verbs
    def _get(self, route: Route) -> None:
        if route.name is None and self.query_one("watch") in ("true", "1", "True"):
            return self._watch(route)
        if route.name is None:
            return self._list(route)
        self._wait_fresh()
        obj = self.cluster.get(route.kind.resource, route.namespace, route.name)
        if route.sub == "scale":
            return self.send_json(200, scale_view(obj))
        self._reply_object(200, route.kind.resource, obj)

    def _wait_fresh(self, text: str | None = None) -> None:
        """A get or list with a resourceVersion (other than "0") reads state at least that new:
        if the store is behind, wait for it a while, then 504 "Too large resource version",
        as the watch cache does (resourceVersionMatch NotOlderThan, or unset)."""
        text = self.query_one("resourceVersion") if text is None else text
        if text in (None, "", "0"):
            return
        wanted = _resource_version(text)
        wait = getattr(self.server, "too_large_wait", DEFAULT_TOO_LARGE_WAIT)
        if not self.cluster.wait_fresh(wanted, wait):
            raise too_large_resource_version(wanted, self.cluster.rv)

    def _list_options(self) -> tuple[int, str | None, int | None]:
        """(limit, continue token, exact resourceVersion) after the apiserver's checks."""
        limit_text, token = self.query_one("limit"), self.query_one("continue")
        rv_text, match = self.query_one("resourceVersion"), self.query_one("resourceVersionMatch")
        try:
            limit = max(0, int(limit_text or 0))
        except ValueError:
            raise bad_request(f"limit: Invalid value: {limit_text!r}") from None
        if token and rv_text not in (None, ""):
            raise bad_request("specifying resource version is not allowed when using continue")
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise bad_request(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"'
            )
        if match and rv_text in (None, ""):
            raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match == "Exact":
            if rv_text == "0":
                raise bad_request('resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
            exact = _resource_version(rv_text)
            self._wait_fresh(rv_text)
            return limit, token, exact
        self._wait_fresh(rv_text)
        return limit, token, None

    def _list(self, route: Route) -> None:
        kind = route.kind
        fields_text = self.query_one("fieldSelector")
        validation.check_field_selector(kind.resource, fields_text)
        limit, token, exact = self._list_options()
        page = self.cluster.list_page(
            kind.resource, route.namespace, self.query_one("labelSelector"), fields_text, limit, token, exact
        )
        metadata = {"resourceVersion": page.rv}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining is not None:
            metadata["remainingItemCount"] = page.remaining
        if tables.wants_table(self.headers.get("Accept")):
            include = self.query_one("includeObject", "Metadata")
            body = tables.table(kind.resource, page.items, page.rv, include)
            body["metadata"] = metadata
            return self.send_json(200, body)
        self.send_json(
            200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": metadata, "items": page.items}
        )

    def _create(self, route: Route) -> None:
        options = WriteOptions(self)
        body = self._typed_body(route.kind.kind, options)
        namespace = route.namespace
        if route.kind.namespaced:
            namespace = namespace or (body.get("metadata") or {}).get("namespace") or "default"
            body_ns = (body.get("metadata") or {}).get("namespace")
            if route.namespace and body_ns and body_ns != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        obj = self.cluster.create(
            route.kind.resource, namespace or "", body, manager=options.manager, dry_run=options.dry_run
        )
        self._reply_object(201, route.kind.resource, obj)

    def _replace(self, route: Route) -> None:
        options = WriteOptions(self)
        resource = route.kind.resource
        body = self._typed_body("Scale" if route.sub == "scale" else route.kind.kind, options)
        with self.cluster.lock:
            if route.sub == "scale":
                return self._write_scale(route, body, options)
            obj = self._write(route, body, options, route.sub)
        self._reply_object(200, resource, obj)

    def _patch(self, route: Route) -> None:
        options = WriteOptions(self)
        resource = route.kind.resource
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == APPLY_PATCH:
            return self._apply(route, options)
        if options.force:
            raise ApiError(422, "Invalid", "force: Forbidden: may not be specified for non-apply patch")
        patch = self._body()
        with self.cluster.lock:
            current = self.cluster.get(resource, route.namespace, route.name)
            if route.sub == "scale":
                scale = apply_patch(content_type, scale_view(current), patch)
                self._warnings += validation.decode(scale, "Scale", options.directive)
                return self._write_scale(route, scale, options)
            patched = apply_patch(content_type, current, patch)
            if not isinstance(patched, dict):
                raise bad_request("the patch did not produce an object")
            self._warnings += validation.decode(patched, route.kind.kind, options.directive)
            obj = self._write(route, patched, options, route.sub)
        self._reply_object(200, resource, obj)

    def _apply(self, route: Route, options: WriteOptions) -> None:
        """Server-side apply: `PATCH` with `application/apply-patch+yaml` and a fieldManager."""
        kind = route.kind
        if not options.explicit_manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        if route.sub:
            raise bad_request(f"server-side apply to the {route.sub} subresource is not supported by this sandbox")
        config = self._object_body()
        if config.get("apiVersion") != kind.api_version or config.get("kind") != kind.kind:
            raise bad_request(
                f"invalid object type: {config.get('apiVersion', '')}, Kind={config.get('kind', '')} "
                f"(this is {kind.api_version}, Kind={kind.kind})"
            )
        if options.directive == "Strict":
            unknown = validation.decode(dict(config), kind.kind, "Warn")
            if unknown:
                ident = f"{route.namespace}/{route.name}; {kind.api_version}, Kind={kind.kind}"
                fields_text = ", ".join(f".{_quoted(u)}: field not declared in schema" for u in unknown)
                raise bad_request(f"failed to create typed patch object ({ident}): {fields_text}")
        self._warnings += validation.decode(config, kind.kind, options.directive)
        if kind.namespaced and route.namespace:
            config.setdefault("metadata", {})["namespace"] = route.namespace
        status, obj = self.cluster.apply(
            kind.resource,
            route.namespace or "",
            route.name,
            config,
            manager=options.manager,
            force=options.force,
            dry_run=options.dry_run,
        )
        self._reply_object(status, kind.resource, obj)

    def _write_scale(self, route: Route, scale: dict, options: WriteOptions) -> None:
        current = self.cluster.get(route.kind.resource, route.namespace, route.name)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv:
            current["metadata"]["resourceVersion"] = sent_rv
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{route.name}" is invalid: spec.replicas')
        current["spec"]["replicas"] = replicas
        self.send_json(200, scale_view(self._write(route, current, options)))

    def _write(self, route: Route, body: dict, options: WriteOptions, subresource: str | None = None) -> dict:
        """PUT the routed object (or its `subresource`) as `body`, with the request's field
        manager and dry run."""
        return self.cluster.replace(
            route.kind.resource,
            route.namespace,
            route.name,
            body,
            subresource,
            manager=options.manager,
            dry_run=options.dry_run,
        )

    def _delete(self, route: Route) -> None:
        body = self._body() or {}
        if not isinstance(body, dict):
            raise bad_request("the body of a delete must be DeleteOptions")
        dry_run = validation.check_dry_run([*self.query.get("dryRun", []), *(body.get("dryRun") or [])])
        propagation = self.query_one("propagationPolicy") or body.get("propagationPolicy") or "Background"
        if body.get("orphanDependents") is True:
            propagation = "Orphan"
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{propagation}": '
                'supported values: "Foreground", "Background", "Orphan"',
            )
        grace_text = self.query_one("gracePeriodSeconds")
        grace = body.get("gracePeriodSeconds") if grace_text is None else _int_option("gracePeriodSeconds", grace_text)
        obj = self.cluster.delete(
            route.kind.resource,
            route.namespace,
            route.name,
            propagation,
            dry_run=dry_run,
            grace=grace,
            preconditions=body.get("preconditions"),
        )
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

    # ------------------------------------------------------ pods: log, exec, …
    def _connect(self, route: Route) -> None:
        if route.name is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.cluster.get("pods", route.namespace, route.name)
        if route.sub == "log" and self.command == "GET":
            return self._logs(pod)
        what = {"exec": "run commands in", "attach": "attach to", "portforward": "forward ports to"}.get(route.sub)
        if what is None or self.command not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        raise bad_request(
            f"the sandbox cluster cannot {what} pod {route.name}: its containers are stand-ins for the kubelet "
            f"with no processes (pods/{route.sub} is not supported here; try kubectl logs or kubectl describe)"
        )

    def _container(self, pod: dict) -> str:
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        wanted = self.query_one("container")
        if not wanted:
            if len(names) == 1:
                return names[0]
            raise bad_request(
                f"a container name must be specified for pod {pod['metadata']['name']}, choose one of: "
                f"[{' '.join(names)}]"
            )
        if wanted not in names:
            raise bad_request(f"container {wanted} is not valid for pod {pod['metadata']['name']}")
        return wanted

    def _logs(self, pod: dict) -> None:
        """pods/log: the lines the kubelet stand-in's containers printed (text/plain); with
        `follow=true` the answer streams until the container stops or the pod goes."""
        container = self._container(pod)
        previous = self.query_one("previous") in ("true", "1", "True")
        follow = self.query_one("follow") in ("true", "1", "True") and not previous
        kubelet = self.server.kubelet
        with self.cluster.lock:
            lines, running, number = kubelet.logs(pod, container, previous)
        shown = self._log_window(lines)
        if not follow:
            return self.send_bytes(200, self._log_text(shown), "text/plain")
        self._follow_logs(pod, container, shown, set(lines), running, number)

    def _log_window(self, lines: list) -> list:
        since = self.query_one("sinceSeconds")
        if since:
            cutoff = time.time() - _int_option("sinceSeconds", since)
            lines = [entry for entry in lines if entry[0] >= cutoff]
        tail = self.query_one("tailLines")
        if tail:
            count = _int_option("tailLines", tail)
            lines = lines[-count:] if count else []
        return lines

    def _log_text(self, lines: list) -> bytes:
        stamps = self.query_one("timestamps") in ("true", "1", "True")
        text = "".join(f"{iso_nano(at)} {line}\n" if stamps else f"{line}\n" for at, line in lines)
        limit = self.query_one("limitBytes")
        data = text.encode()
        return data[: _int_option("limitBytes", limit)] if limit else data

    def _follow_logs(self, pod: dict, container: str, shown: list, seen: set, running: bool, number: int) -> None:
        """Stream one container instance's lines until it exits (as `kubectl logs -f` ends when
        the container stops), the pod goes, or the server stops."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(self._log_text(shown))
        uid, kubelet = pod["metadata"]["uid"], self.server.kubelet
        while running and not self.cluster.closed and not self.server.stopping:
            with self.cluster.lock:
                self.cluster.changed.wait(5.0)
                current = self.cluster.find("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                if current is None or current["metadata"]["uid"] != uid:
                    break
                lines, running, _ = kubelet.logs(current, container, False, number)
            fresh = [entry for entry in lines if entry not in seen]
            if fresh:
                self._chunk(self._log_text(fresh))
                seen.update(fresh)
        if not self.server.stopping:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    # ------------------------------------------------------------------ watch
    def _watch(self, route: Route) -> None:
        kind = route.kind
        labels_text, fields_text = self.query_one("labelSelector"), self.query_one("fieldSelector")
        validation.check_field_selector(kind.resource, fields_text)
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
        """Send the initial events, then each new one, with a BOOKMARK every interval; the
        thread sleeps until the next event or deadline (a closing cluster or server wakes it)."""
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
                event = watcher.events.get(timeout=max(0.0, wait))
            except queue.Empty:
                continue
            if event is None:  # drop_connections() or the cluster closed
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


def _quoted(text: str) -> str:
    """`unknown field "spec.foo"` → `spec.foo`."""
    return text.split('"')[1]


def _resource_version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"invalid resource version: {text}") from None


def _int_option(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name}: Invalid value: {text!r}: must be an integer") from None
    if value < 0:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


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
