"""Kubernetes through the official `kubernetes` client, one ApiClient per Cluster.

Objects come back as plain dicts (the API's own JSON shape), which `clusters.rollout`
reads; nothing outside this module sees a client model or an ApiException.
"""

import contextlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from plumbing.integrations import IntegrationError

KINDS = ("deployments", "replicasets", "pods")
CHANGE_CAUSE = "kubernetes.io/change-cause"
DEPLOYMENT_ID = "pampam.io/deployment-id"
REVISION = "deployment.kubernetes.io/revision"

_clients: dict[tuple, client.ApiClient] = {}
_lock = threading.Lock()


class Expired(IntegrationError):
    """A watch asked for a resourceVersion the server no longer keeps (410 Gone): list again."""

    def __init__(self):
        super().__init__("resourceVersion too old (410 Gone): list again.", permanent=True)


@dataclass
class Snapshot:
    """A Deployment with the ReplicaSets and Pods it owns, as the API returned them."""

    deployment: dict
    replicasets: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)


def api_client(cluster) -> client.ApiClient:
    """One ApiClient per cluster configuration (URL, CA, token, or in-cluster), reused."""
    key = (
        cluster.pk,
        cluster.api_url,
        cluster.token_encrypted,
        cluster.ca_cert,
        cluster.in_cluster,
        cluster.insecure_skip_tls_verify,
    )
    with _lock:
        if key not in _clients:
            _clients[key] = client.ApiClient(_configuration(cluster))
        return _clients[key]


def _configuration(cluster) -> client.Configuration:
    if cluster.in_cluster:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return configuration
    configuration = client.Configuration()
    configuration.host = cluster.api_url.rstrip("/")
    token = cluster.token
    if token:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    if cluster.ca_cert:
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
            handle.write(cluster.ca_cert)
        configuration.ssl_ca_cert = handle.name
    configuration.verify_ssl = not cluster.insecure_skip_tls_verify
    configuration.retries = False
    # The watcher keeps three long-lived streams per namespace on this one client, and jobs
    # share it too: a small pool would discard and reopen connections all the time.
    configuration.connection_pool_maxsize = 128
    return configuration


def _error(exc: Exception, what: str) -> IntegrationError:
    if isinstance(exc, ApiException):
        permanent = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (409, 429)
        reason = _status_message(exc) or exc.reason
        return IntegrationError(f"Kubernetes refused to {what}: {reason} (HTTP {exc.status}).", permanent)
    return IntegrationError(f"Kubernetes could not be reached to {what}: {exc}.")


def _status_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        return ""


# Seconds to connect and to wait for an answer: an API server that stops answering mid-request
# fails the call (a transient error, retried) instead of holding a worker or the reconciler.
REQUEST_TIMEOUT = (10, 60)


def _call(what: str, func, *args, **kwargs) -> dict:
    """Call a generated API method and return the server's JSON as it is.

    The client's pydantic models refuse objects that omit a field they call required (a
    ReplicaSet's status.replicas while it is being created, for one) and would lose the whole
    response; client-go and kubectl read such objects fine, and so do we.
    """
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        response = func(*args, _preload_content=False, **kwargs)
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(response.data)
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise _error(exc, what) from None


def read_deployment(cluster, namespace: str, name: str) -> dict:
    """Reference: GET /apis/apps/v1/namespaces/{ns}/deployments/{name}."""
    apps = client.AppsV1Api(api_client(cluster))
    return _call(f"read deployment {name}", apps.read_namespaced_deployment, name, namespace)


def read_snapshot(cluster, namespace: str, name: str) -> Snapshot:
    """Read a Deployment and what it owns.

    Reference: GET /apis/apps/v1/namespaces/{ns}/deployments/{name}, then LIST replicasets and
    pods with the Deployment's label selector.
    """
    api = api_client(cluster)
    apps = client.AppsV1Api(api)
    deployment = read_deployment(cluster, namespace, name)
    selector = _selector(deployment)
    replicasets = _call("list replica sets", apps.list_namespaced_replica_set, namespace, label_selector=selector)
    pods = _call("list pods", client.CoreV1Api(api).list_namespaced_pod, namespace, label_selector=selector)
    uid = deployment["metadata"]["uid"]
    owned = [rs for rs in replicasets.get("items") or [] if _owned_by(rs, uid)]
    owned_uids = {rs["metadata"]["uid"] for rs in owned}
    return Snapshot(deployment, owned, [p for p in pods.get("items") or [] if any(_owned_by(p, u) for u in owned_uids)])


def _selector(deployment: dict) -> str:
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def changed_by(deployment: dict) -> int | None:
    """The portal deployment whose change this Deployment object carries (its id annotation)."""
    value = (deployment.get("metadata", {}).get("annotations") or {}).get(DEPLOYMENT_ID, "")
    return int(value) if value.isdigit() else None


def set_image(cluster, namespace, name, container, image, *, change_cause: str, deployment_id: int) -> dict:
    """Point `container` at `image` with a strategic-merge patch, as `kubectl set image` does.

    Reference: PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}
    (application/strategic-merge-patch+json).
    Returns the patched Deployment (its new metadata.generation tells the rollout apart).
    """
    body = {
        "metadata": {"annotations": {CHANGE_CAUSE: change_cause, DEPLOYMENT_ID: str(deployment_id)}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": container}],
                    "containers": [{"name": container, "image": image}],
                }
            }
        },
    }
    apps = client.AppsV1Api(api_client(cluster))
    return _call(f"update the image of {name}", apps.patch_namespaced_deployment, name, namespace, body)


def set_paused(cluster, namespace: str, name: str, paused: bool) -> None:
    """Reference: PATCH …/deployments/{name} {"spec": {"paused": …}} (kubectl rollout pause/resume)."""
    apps = client.AppsV1Api(api_client(cluster))
    _call(f"pause {name}", apps.patch_namespaced_deployment, name, namespace, {"spec": {"paused": paused}})


def list_objects(cluster, namespace: str, kind: str) -> tuple[list[dict], str]:
    """List one kind in a namespace; returns the items and the list's resourceVersion.

    Reference: GET /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}, /api/v1/namespaces/{ns}/pods.
    """
    listed = _call(f"list {kind}", _lister(api_client(cluster), kind), namespace)
    return listed.get("items") or [], listed["metadata"]["resourceVersion"]


class WatchStream:
    """One watch request: iterate it for (type, object dict); `close()` from another thread ends it.

    Raises Expired on 410 Gone and IntegrationError when the connection fails. The lines are
    read as they are (see `_call`), not through `watch.Watch`, which builds models.
    Reference: GET …?watch=true&resourceVersion=…&allowWatchBookmarks=true&timeoutSeconds=…
    (one JSON event per line; ERROR carries a Status, code 410 when the version is gone).
    """

    def __init__(self, cluster, namespace: str, kind: str, resource_version: str, timeout_seconds: int = 300):
        self.lister = _lister(api_client(cluster), kind)
        self.args = (namespace, kind, resource_version, timeout_seconds)
        self.response = None
        self.closed = False

    def __iter__(self):
        namespace, kind, resource_version, timeout_seconds = self.args
        try:
            self.response = self.lister(
                namespace,
                watch=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(10, timeout_seconds + 30),
            )
            if self.response.status == 410:
                raise Expired()
            if not 200 <= self.response.status <= 299:
                raise ApiException(http_resp=self.response)
            for line in watch.watch.iter_resp_lines(self.response):
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise (
                        Expired()
                        if event["object"].get("code") == 410
                        else ApiException(status=event["object"].get("code"), body=json.dumps(event["object"]))
                    )
                yield event["type"], event["object"]
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self.closed:
                return
            raise _error(exc, f"watch {kind}") from None
        finally:
            if self.response is not None:
                # Closed, not returned to the pool: a half-read stream must never be reused.
                self.response.close()

    def close(self) -> None:
        self.closed = True
        if self.response is not None:
            with contextlib.suppress(Exception):  # already closed
                self.response.shutdown()


def _lister(api, kind: str):
    if kind == "deployments":
        return client.AppsV1Api(api).list_namespaced_deployment
    if kind == "replicasets":
        return client.AppsV1Api(api).list_namespaced_replica_set
    if kind == "pods":
        return client.CoreV1Api(api).list_namespaced_pod
    raise ValueError(f"unknown kind {kind}")


# -- the cluster the portal itself runs in: Leases for leader election --------------------------


class Conflict(IntegrationError):
    """Someone else wrote the object first (409): read it again and decide again."""

    def __init__(self, what: str):
        super().__init__(f"Kubernetes refused to {what}: someone else changed it first (HTTP 409).")


def local_client(timeout: float = 5.0) -> client.ApiClient:
    """An ApiClient for the cluster this process runs in: its service account when it runs in a
    pod, else the current context of $KUBECONFIG (~/.kube/config), as kubectl and client-go do.

    Requests time out after `timeout` seconds (leader election must give up before its lease).
    """
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            # Read $KUBECONFIG now: the library's default was fixed when it was imported.
            path = os.environ.get("KUBECONFIG") or config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION
            config.load_kube_config(config_file=path, client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            raise IntegrationError(
                f"No Kubernetes credentials for leader election: not in a pod and no kubeconfig ({exc}). "
                "Set KUBECONFIG, or turn LEADER_ELECTION off.",
                permanent=True,
            ) from None
    configuration.retries = False
    api = client.ApiClient(configuration)
    api.request_timeout = timeout
    return api


def _lease_call(api, what: str, method: str, *args) -> dict | None:
    """Call CoordinationV1Api.`method`; None on 404, Conflict on 409 (an AlreadyExists create, or
    a stale resourceVersion), IntegrationError otherwise."""
    leases = client.CoordinationV1Api(api)
    timeout = getattr(api, "request_timeout", 5.0)
    try:
        response = getattr(leases, method)(*args, _preload_content=False, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(response.data)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 409:
            raise Conflict(what) from None
        raise _error(exc, what) from None
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise _error(exc, what) from None


def read_lease(api, namespace: str, name: str) -> dict | None:
    """The Lease, or None when there is none.

    Reference: GET /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}.
    """
    return _lease_call(api, f"read lease {name}", "read_namespaced_lease", name, namespace)


def create_lease(api, namespace: str, lease: dict) -> dict:
    """Create a Lease; Conflict when another process created it first.

    Reference: POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases.
    """
    name = lease["metadata"]["name"]
    return _lease_call(api, f"create lease {name}", "create_namespaced_lease", namespace, lease)


def replace_lease(api, namespace: str, lease: dict) -> dict:
    """Replace a Lease whose `metadata.resourceVersion` is the one read (compare-and-swap);
    Conflict when someone wrote it since.

    Reference: PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}.
    """
    name = lease["metadata"]["name"]
    return _lease_call(api, f"update lease {name}", "replace_namespaced_lease", name, namespace, lease)
