"""A running portal with the sandbox cluster behind it, for the CLI, pipeline and Schemathesis
tests: uvicorn, the RQ worker and the cluster watcher in threads (tests/support/stack.py)."""

import pytest
from channels.layers import channel_layers

from tests.support.stack import running_portal

IMAGE = "registry.example/storefront:1.0.0"


def start_kube():
    from sandbox.kube import start

    deployments = [
        {"namespace": env, "name": "storefront", "image": IMAGE, "replicas": replicas}
        for env, replicas in (("dev", 1), ("staging", 2), ("prod", 3))
    ]
    return start(port=0, ready_after=0.3, seed={"deployments": deployments})


@pytest.fixture
def stack(transactional_db):
    # A channel layer of this server's own event loop (long-polls receive on it), dropped after.
    channel_layers.backends.clear()
    try:
        with running_portal(start_kube(), "api-tests") as portal:
            yield portal
    finally:
        channel_layers.backends.clear()
