"""Fixtures for the fake Kubernetes sandbox tests (no Django needed)."""

import os
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from sandbox.kube import start
from sandbox.kube.errors import ApiError
from tests.support.tools import require_kubectl


@pytest.fixture
def kube():
    """A fresh fake cluster with fast pods (Ready after 0.1 s)."""
    sandbox = start(ready_after=0.1, bookmark_interval=0.2)
    yield sandbox
    sandbox.stop()


def api_client(url: str, token: str | None = None) -> client.ApiClient:
    config = client.Configuration()
    config.host = url
    if token:
        config.api_key = {"authorization": token}
        config.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(config)


@pytest.fixture
def apps(kube):
    with api_client(kube.url) as api:
        yield client.AppsV1Api(api)


@pytest.fixture
def core(kube):
    with api_client(kube.url) as api:
        yield client.CoreV1Api(api)


class Kubectl:
    """Runs the real kubectl against the sandbox with a throw-away kubeconfig and cache."""

    def __init__(self, url: str, home: Path, program: str = "kubectl"):
        self.program = program
        config = home / "kubeconfig"
        config.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: sandbox\n  cluster: {{server: '{url}'}}\n"
            "contexts:\n- name: sandbox\n"
            "  context: {cluster: sandbox, user: me, namespace: default}\n"
            "current-context: sandbox\n"
            "users:\n- name: me\n  user: {}\n"
        )
        self.env = {
            **os.environ,
            "KUBECONFIG": str(config),
            "KUBECACHEDIR": str(home / "cache"),
            "HOME": str(home),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None):
        result = subprocess.run(
            [self.program, *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=stdin
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result


@pytest.fixture
def kubectl(kube, tmp_path):
    return Kubectl(kube.url, tmp_path, require_kubectl())


def modify(kube, namespace: str, name: str, change) -> None:
    """Read a Deployment, `change(it)` and replace it, again on a conflict (the controller wrote
    its status in between), as a client's retry-on-conflict does."""
    for _ in range(50):
        d = kube.deployment(namespace, name)
        change(d)
        try:
            kube.cluster.replace("deployments", namespace, name, d)
            return
        except ApiError as error:
            if error.code != 409:
                raise
    raise AssertionError(f"{name} kept changing under 50 replaces")


def set_image(kube, namespace: str, name: str, image: str) -> None:
    modify(kube, namespace, name, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=image))
