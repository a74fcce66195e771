"""A running portal with the sandbox cluster behind it, for the CLI, pipeline and Schemathesis
tests: uvicorn, the RQ worker and the cluster watcher in threads (tests/support/stack.py)."""

from dataclasses import dataclass

import pytest
from channels.layers import channel_layers
from django.conf import settings

from tests.factories import Cast, make_cast, make_cluster
from tests.support.stack import Background, serve, watch, work_jobs

IMAGE = "registry.example/storefront:1.0.0"


@dataclass
class Stack:
    url: str
    cast: Cast
    kube: object


def start_kube():
    from sandbox.kube import start

    deployments = [
        {"namespace": env, "name": "storefront", "image": IMAGE, "replicas": replicas}
        for env, replicas in (("dev", 1), ("staging", 2), ("prod", 3))
    ]
    return start(port=0, ready_after=0.3, seed={"deployments": deployments})


@pytest.fixture
def stack(transactional_db):
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    # A channel layer of this server's own event loop (long-polls receive on it), dropped after.
    channel_layers.backends.clear()
    kube = start_kube()
    cast = make_cast(cluster=make_cluster(name="main", api_url=kube.url))
    background = Background()
    background.stoppers.append(kube.stop)
    try:
        url = serve(background)
        work_jobs(background)
        watch(background, name="api-tests")
        yield Stack(url, cast, kube)
    finally:
        background.close()
        channel_layers.backends.clear()
