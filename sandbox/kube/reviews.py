"""Who the caller is and what they may do: SelfSubjectReview (`kubectl auth whoami`),
SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectRulesReview (`can-i --list`).

The sandbox knows one user: whoever holds the token it was started with (or anyone, when it was
started without one) is its cluster admin, like the admin credentials of a kind or kubeadm
cluster, so every review answers "allowed".
"""

from .errors import bad_request

ADMIN = {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]}
REASON = (
    'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" to Group '
    '"kubeadm:cluster-admins"'
)
GROUP_VERSIONS = {"authorization.k8s.io/v1", "authentication.k8s.io/v1"}


def _answer(body: dict, kind: str, api_version: str, status: dict) -> dict:
    metadata = body.get("metadata") or {}
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None, **{k: v for k, v in metadata.items() if k == "name"}},
        **({"spec": body["spec"]} if "spec" in body else {}),
        "status": status,
    }


def access_review(body: dict, api_version: str) -> dict:
    spec = body.get("spec") or {}
    if not spec.get("resourceAttributes") and not spec.get("nonResourceAttributes"):
        raise bad_request(
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: '
            '"null": exactly one of nonResourceAttributes or resourceAttributes must be specified'
        )
    return _answer(body, "SelfSubjectAccessReview", api_version, {"allowed": True, "reason": REASON})


def rules_review(body: dict, api_version: str) -> dict:
    status = {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    }
    return _answer(body, "SelfSubjectRulesReview", api_version, status)


def self_review(body: dict, api_version: str) -> dict:
    return _answer(body, "SelfSubjectReview", api_version, {"userInfo": dict(ADMIN)})


# (group/version, resource) → (kind, answer)
REVIEWS = {
    ("authorization.k8s.io/v1", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", access_review),
    ("authorization.k8s.io/v1", "selfsubjectrulesreviews"): ("SelfSubjectRulesReview", rules_review),
    ("authentication.k8s.io/v1", "selfsubjectreviews"): ("SelfSubjectReview", self_review),
}


def resource_list(group_version: str) -> dict:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": resource, "singularName": kind.lower(), "namespaced": False, "kind": kind, "verbs": ["create"]}
            for (gv, resource), (kind, _) in sorted(REVIEWS.items())
            if gv == group_version
        ],
    }


def groups() -> list[dict]:
    return [
        {
            "name": gv.split("/")[0],
            "versions": [{"groupVersion": gv, "version": "v1"}],
            "preferredVersion": {"groupVersion": gv, "version": "v1"},
        }
        for gv in sorted(GROUP_VERSIONS)
    ]
