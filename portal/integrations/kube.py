"""Kubernetes through the official `kubernetes` client, one ApiClient per Cluster.

Objects come back as plain dicts (the API's own JSON shape), which `clusters.rollout`
reads; nothing outside this module sees a client model or an ApiException.
"""

import tempfile
import threading
from dataclasses import dataclass, field

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from portal.integrations import IntegrationError

KINDS = ("deployments", "replicasets", "pods")
CHANGE_CAUSE = "kubernetes.io/change-cause"
DEPLOYMENT_ID = "pampam.io/deployment-id"
REVISION = "deployment.kubernetes.io/revision"
# Annotations kubectl keeps on the Deployment when it restores an old template.
_SKIP_ON_UNDO = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
}

_clients: dict[tuple, client.ApiClient] = {}
_lock = threading.Lock()


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
    return configuration


def _error(exc: Exception, what: str) -> IntegrationError:
    if isinstance(exc, ApiException):
        permanent = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (409, 429)
        reason = _status_message(exc) or exc.reason
        return IntegrationError(f"Kubernetes refused to {what}: {reason} (HTTP {exc.status}).", permanent)
    return IntegrationError(f"Kubernetes could not be reached to {what}: {exc}.")


def _status_message(exc: ApiException) -> str:
    import json

    try:
        return json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        return ""


def _call(what: str, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _error(exc, what) from None


def _plain(api, obj):
    return api.sanitize_for_serialization(obj)


def read_snapshot(cluster, namespace: str, name: str) -> Snapshot:
    """Read a Deployment and what it owns.

    Reference: GET /apis/apps/v1/namespaces/{ns}/deployments/{name}, then LIST replicasets and
    pods with the Deployment's label selector.
    """
    api = api_client(cluster)
    apps = client.AppsV1Api(api)
    deployment = _plain(api, _call(f"read deployment {name}", apps.read_namespaced_deployment, name, namespace))
    selector = _selector(deployment)
    replicasets = _call("list replica sets", apps.list_namespaced_replica_set, namespace, label_selector=selector)
    pods = _call("list pods", client.CoreV1Api(api).list_namespaced_pod, namespace, label_selector=selector)
    uid = deployment["metadata"]["uid"]
    owned = [rs for rs in _plain(api, replicasets.items) if _owned_by(rs, uid)]
    owned_uids = {rs["metadata"]["uid"] for rs in owned}
    return Snapshot(
        deployment,
        owned,
        [p for p in _plain(api, pods.items) if any(_owned_by(p, u) for u in owned_uids)],
    )


def _selector(deployment: dict) -> str:
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def set_image(cluster, namespace, name, container, image, *, change_cause: str, deployment_id: int) -> dict:
    """Point `container` at `image` with a strategic-merge patch, as `kubectl set image` does.

    Reference: PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}
    (application/strategic-merge-patch+json).
    Returns the patched Deployment (its new metadata.generation tells the rollout apart).
    """
    api = api_client(cluster)
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
    apps = client.AppsV1Api(api)
    patched = _call(f"update the image of {name}", apps.patch_namespaced_deployment, name, namespace, body)
    return _plain(api, patched)


def set_paused(cluster, namespace: str, name: str, paused: bool) -> None:
    """Reference: PATCH …/deployments/{name} {"spec": {"paused": …}} (kubectl rollout pause/resume)."""
    apps = client.AppsV1Api(api_client(cluster))
    _call(f"pause {name}", apps.patch_namespaced_deployment, name, namespace, {"spec": {"paused": paused}})


def undo(cluster, namespace: str, name: str, to_revision: str | None = None) -> str:
    """Restore the pod template of an earlier revision, as `kubectl rollout undo` does.

    Reference: kubectl's DeploymentRollbacker: find the ReplicaSet of the wanted revision (the
    one before the current when none is given), then PATCH the Deployment with a JSON patch
    replacing spec.template and the annotations. Returns the revision restored.
    """
    snapshot = read_snapshot(cluster, namespace, name)
    current = snapshot.deployment["metadata"].get("annotations", {}).get(REVISION, "")
    target = _revision_to_restore(snapshot.replicasets, current, to_revision)
    template = dict(target["spec"]["template"])
    labels = dict(template.get("metadata", {}).get("labels", {}))
    labels.pop("pod-template-hash", None)
    template["metadata"] = {**template.get("metadata", {}), "labels": labels}
    annotations = {
        k: v for k, v in snapshot.deployment["metadata"].get("annotations", {}).items() if k in _SKIP_ON_UNDO
    }
    annotations.update(
        {k: v for k, v in (target["metadata"].get("annotations") or {}).items() if k not in _SKIP_ON_UNDO}
    )
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    apps = client.AppsV1Api(api_client(cluster))
    _call(f"roll back {name}", apps.patch_namespaced_deployment, name, namespace, patch)
    return target["metadata"]["annotations"][REVISION]


def _revision_to_restore(replicasets: list[dict], current: str, wanted: str | None) -> dict:
    by_revision = {}
    for rs in replicasets:
        revision = (rs["metadata"].get("annotations") or {}).get(REVISION)
        if revision and revision.isdigit():
            by_revision[int(revision)] = rs
    if wanted:
        if not wanted.isdigit() or int(wanted) not in by_revision:
            raise IntegrationError(f"Revision {wanted} is no longer kept by the cluster.", permanent=True)
        return by_revision[int(wanted)]
    older = sorted(r for r in by_revision if not current.isdigit() or r < int(current))
    if not older:
        raise IntegrationError("There is no earlier revision to roll back to.", permanent=True)
    return by_revision[older[-1]]


def list_objects(cluster, namespace: str, kind: str) -> tuple[list[dict], str]:
    """List one kind in a namespace; returns the items and the list's resourceVersion.

    Reference: GET /apis/apps/v1/namespaces/{ns}/{deployments|replicasets}, /api/v1/namespaces/{ns}/pods.
    """
    api = api_client(cluster)
    listed = _call(f"list {kind}", _lister(api, kind), namespace)
    return _plain(api, listed.items), listed.metadata.resource_version


def watch_objects(cluster, namespace: str, kind: str, resource_version: str, timeout_seconds: int = 300):
    """Yield (type, object dict) from a watch; raises IntegrationError(permanent) on 410 Gone.

    Reference: GET …?watch=true&resourceVersion=…&allowWatchBookmarks=true&timeoutSeconds=….
    """
    api = api_client(cluster)
    stream = watch.Watch()
    try:
        for event in stream.stream(
            _lister(api, kind),
            namespace,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
            _request_timeout=timeout_seconds + 30,
        ):
            yield event["type"], _plain(api, event["object"]) if event["type"] != "ERROR" else event["raw_object"]
    except ApiException as exc:
        if exc.status == 410:
            raise IntegrationError("resourceVersion too old (410 Gone): list again.", permanent=True) from None
        raise _error(exc, f"watch {kind}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _error(exc, f"watch {kind}") from None
    finally:
        stream.stop()


def _lister(api, kind: str):
    if kind == "deployments":
        return client.AppsV1Api(api).list_namespaced_deployment
    if kind == "replicasets":
        return client.AppsV1Api(api).list_namespaced_replica_set
    if kind == "pods":
        return client.CoreV1Api(api).list_namespaced_pod
    raise ValueError(f"unknown kind {kind}")
