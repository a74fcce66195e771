"""The deploy stage: patch a Deployment the way `kubectl set image` does.

A build whose parameters include IMAGE, NAMESPACE and DEPLOYMENT (or SERVICE) is a deploy
job. When the sandbox knows a cluster (`kube_url`), the stage sends the same strategic
merge patch kubectl sends (PROTOCOLS.md §1.2) so the Kubernetes sandbox starts a rollout.
"""

from dataclasses import dataclass
from urllib.parse import quote

import requests


class DeployError(Exception):
    """The PATCH failed; `args[0]` is the line kubectl would have printed."""


@dataclass
class DeployTarget:
    namespace: str
    deployment: str
    container: str
    image: str
    change_cause: str

    @property
    def command(self) -> str:
        return f"kubectl set image deployment/{self.deployment} {self.container}={self.image} -n {self.namespace}"


def target_from_params(params: dict[str, str], job: str, number: int) -> DeployTarget | None:
    deployment = params.get("DEPLOYMENT") or params.get("SERVICE")
    if not (params.get("IMAGE") and params.get("NAMESPACE") and deployment):
        return None
    return DeployTarget(
        namespace=params["NAMESPACE"],
        deployment=deployment,
        container=params.get("CONTAINER") or deployment,
        image=params["IMAGE"],
        change_cause=params.get("CHANGE_CAUSE") or f"jenkins {job} #{number}: {params['IMAGE']}",
    )


def patch_body(target: DeployTarget) -> dict:
    """kubectl's two-way strategic merge patch, plus the change-cause annotation."""
    return {
        "metadata": {"annotations": {"kubernetes.io/change-cause": target.change_cause}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": target.container}],
                    "containers": [{"name": target.container, "image": target.image}],
                }
            }
        },
    }


def apply(kube_url: str, token: str | None, target: DeployTarget) -> str:
    """Send the PATCH; return kubectl's success line or raise DeployError with its error line."""
    url = (
        f"{kube_url.rstrip('/')}/apis/apps/v1/namespaces/{quote(target.namespace)}"
        f"/deployments/{quote(target.deployment)}"
    )
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        reply = requests.patch(
            url,
            params={"fieldManager": "kubectl-set"},
            json=patch_body(target),
            headers=headers,
            timeout=10,
        )
    except requests.RequestException:
        host = url.split("/")[2]
        raise DeployError(
            f"The connection to the server {host} was refused - did you specify the right host or port?"
        ) from None
    if reply.status_code >= 400:
        raise DeployError(_kubectl_error(reply))
    return f"deployment.apps/{target.deployment} image updated"


def _kubectl_error(reply: requests.Response) -> str:
    """Render an apiserver Status the way kubectl prints it."""
    try:
        status = reply.json()
    except ValueError:
        status = {}
    message = status.get("message") or reply.text.strip() or reply.reason
    reason = status.get("reason") or reply.reason or "Unknown"
    return f"Error from server ({reason}): {message}"
