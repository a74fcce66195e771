"""Legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/v1`) and `/version`.

client-go asks for aggregated discovery first; answering with plain `application/json` makes it
fall back to these (PROTOCOLS.md §1.2).
"""

from . import reviews
from .store import KINDS

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
# Pod subresources that stream or connect (answered by server.py, not stored).
POD_CONNECT = {
    "log": ("Pod", ["get"]),
    "exec": ("PodExecOptions", ["create", "get"]),
    "attach": ("PodAttachOptions", ["create", "get"]),
    "portforward": ("PodPortForwardOptions", ["create", "get"]),
}


def _subresources(kind) -> list[dict]:
    entries = [
        {
            "name": f"{kind.resource}/{sub}",
            "singularName": "",
            "namespaced": kind.namespaced,
            "kind": "Scale" if sub == "scale" else kind.kind,
            "verbs": ["get", "patch", "update"],
            **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
        }
        for sub in kind.subresources
    ]
    if kind.resource == "pods":
        entries += [
            {"name": f"pods/{sub}", "singularName": "", "namespaced": True, "kind": sub_kind, "verbs": verbs}
            for sub, (sub_kind, verbs) in sorted(POD_CONNECT.items())
        ]
    return entries


def resource_list(group_version: str) -> dict:
    """The APIResourceList of one group/version (`v1`, `apps/v1`, `autoscaling/v2`, …)."""
    version = group_version
    resources = []
    for kind in KINDS.values():
        if kind.api_version != group_version:
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
        resources += _subresources(kind)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": version, "resources": resources}


# The sandbox has no custom resources, but clients look for them: kubectl's field-validation check
# lists CustomResourceDefinitions for a kind it finds no PATCH path for (SelfSubjectReview).
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "apiextensions.k8s.io/v1",
    "resources": [
        {
            "name": "customresourcedefinitions",
            "singularName": "customresourcedefinition",
            "namespaced": False,
            "kind": "CustomResourceDefinition",
            "verbs": ["get", "list"],
            "shortNames": ["crd", "crds"],
            "categories": ["api-extensions"],
        }
    ],
}

API_VERSIONS = {
    "kind": "APIVersions",
    "versions": ["v1"],
    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
}
# The named groups of stored kinds, each served at one version, apps first as on kube-apiserver.
STORED_GROUP_VERSIONS = sorted({k.api_version for k in KINDS.values() if k.group}, key=lambda gv: gv != "apps/v1")


def _group(group_version: str) -> dict:
    name, version = group_version.split("/")
    entry = {"groupVersion": group_version, "version": version}
    return {"name": name, "versions": [entry], "preferredVersion": entry}


API_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        *(_group(gv) for gv in STORED_GROUP_VERSIONS),
        {
            "name": "apiextensions.k8s.io",
            "versions": [{"groupVersion": "apiextensions.k8s.io/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apiextensions.k8s.io/v1", "version": "v1"},
        },
        *reviews.groups(),
    ],
}
DISCOVERY = {
    "/api": API_VERSIONS,
    "/apis": API_GROUPS,
    "/api/v1": resource_list("v1"),
    **{f"/apis/{gv}": resource_list(gv) for gv in STORED_GROUP_VERSIONS},
    **{f"/apis/{gv}": reviews.resource_list(gv) for gv in sorted(reviews.GROUP_VERSIONS)},
    "/apis/apiextensions.k8s.io/v1": CRD_RESOURCES,
    "/version": VERSION,
}
