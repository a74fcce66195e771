"""Fan-out: N websocket clients watch one rollout on /ws/deployments/<id>/.

Same real processes as bench/ws_latency.py (uvicorn + watch_clusters, sandbox cluster here).
The clients (the `websockets` library, one asyncio loop) connect in batches, then the rollout
runs for real: the deployment is patched in the sandbox cluster (10 replicas), the watcher
turns what it sees into progress events. To get a sample large enough for a p95, `--notes`
extra timeline events are written alongside at a steady rate. Each event carries the time it
was written (`DeploymentEvent.created_at`); a client's latency is receive time minus that.
Every client must receive every seq from 1 to the last exactly once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_bench REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/ws_fanout.py --clients 200 1000
"""

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ws_latency import Stack, fresh_database, make_world, percentile, session_headers, setup_django


def make_rollout(env, service, user):
    from releases import states
    from releases.models import Deployment, Release

    old, _ = Release.objects.get_or_create(service=service, version="1.0", image="registry.example/storefront:1.0")
    new, _ = Release.objects.get_or_create(service=service, version="1.1", image="registry.example/storefront:1.1")
    Deployment.objects.create(service=service, environment=env, release=old, state=states.SUCCEEDED)
    deployment = Deployment.objects.create(
        service=service, environment=env, release=new, previous_release=old, state=states.APPROVED, requested_by=user
    )
    deployment.log("note", "bench: clients connected, starting")
    return deployment


def run_rollout_and_notes(deployment_pk: int, notes: int, rate: float) -> None:
    """The rollout for real (patch + watcher), plus steady notes; in a thread (sync ORM)."""
    from django.db import connections

    from releases import jobs
    from releases.models import Deployment

    try:
        jobs.run_deployment(deployment_pk)
        for n in range(notes):
            Deployment.objects.get(pk=deployment_pk).log("note", f"bench note {n}")
            time.sleep(1 / rate)
    finally:
        connections.close_all()


async def client(url: str, headers: dict, received: list, ready: asyncio.Event, done: asyncio.Event):
    import websockets

    async with websockets.connect(url, additional_headers=headers, open_timeout=60, max_queue=None) as ws:
        ready.set()
        while not done.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "event":
                received.append((message["seq"], now - datetime.fromisoformat(message["at"]).timestamp()))


async def fan_out(stack: Stack, headers: dict, deployment_pk: int, clients: int, notes: int, rate: float) -> dict:
    from releases.models import Deployment

    url = stack.url.replace("http", "ws") + f"/ws/deployments/{deployment_pk}/?after=1"
    done = asyncio.Event()
    inboxes = [[] for _ in range(clients)]
    tasks, started = [], time.perf_counter()
    for batch in range(0, clients, 50):
        readies = []
        for i in range(batch, min(batch + 50, clients)):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(client(url, headers, inboxes[i], ready, done)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    connect_seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)
    await asyncio.to_thread(run_rollout_and_notes, deployment_pk, notes, rate)

    def finished():
        deployment = Deployment.objects.get(pk=deployment_pk)
        return deployment.state in ("succeeded", "failed"), deployment.last_seq

    deadline = time.monotonic() + 120
    while True:
        over, last = await asyncio.to_thread(finished)
        if over and all(len(inbox) >= last - 1 for inbox in inboxes) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)  # stragglers, and duplicates if there were any
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    over, last = await asyncio.to_thread(finished)
    expected = list(range(2, last + 1))
    complete = sum([seq for seq, _ in inbox] == expected for inbox in inboxes)
    latencies = [lag * 1000 for inbox in inboxes for _, lag in inbox]
    return {
        "clients": clients,
        "connect_s": connect_seconds,
        "events": len(expected),
        "complete": complete,
        "delivered": len(latencies),
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p95": percentile(latencies, 95) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"),
        "state": "succeeded" if over else "unfinished",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--notes", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0, help="notes per second")
    args = parser.parse_args()
    fresh_database()
    setup_django()
    deployment = {"namespace": "prod", "name": "storefront", "image": "registry.example/storefront:1.0", "replicas": 10}
    stack = Stack([deployment], ready_after=0.3)
    results = []
    try:
        env, (service,), user = make_world(stack.kube.url, ["storefront"])
        headers = session_headers(user, stack.url)
        stack.start_processes()
        for n in args.clients:
            rollout = make_rollout(env, service, user)
            results.append(asyncio.run(fan_out(stack, headers, rollout.pk, n, args.notes, args.rate)))
            patch_back(stack)
    finally:
        stack.stop()
    for r in results:
        print(
            f"{r['clients']:>5} clients: connected in {r['connect_s']:.1f}s; rollout {r['state']}; "
            f"{r['events']} events × {r['clients']} = {r['events'] * r['clients']} expected, "
            f"{r['delivered']} delivered; "
            f"clients with every event exactly once, in order: {r['complete']}/{r['clients']}; "
            f"latency p50={r['p50']:.0f} ms p95={r['p95']:.0f} ms max={r['max']:.0f} ms"
        )


def patch_back(stack: Stack) -> None:
    """Next round rolls out 1.1 again: put 1.0 back and wait for the cluster to settle."""
    from clusters.models import Cluster
    from plumbing.integrations import kube
    from releases.models import Deployment

    Deployment.objects.filter(state__in=["approved", "rolling_out"]).update(state="cancelled")
    kube.set_image(
        Cluster.objects.get(),
        "prod",
        "storefront",
        "storefront",
        "registry.example/storefront:1.0",
        change_cause="bench: reset",
        deployment_id=0,
    )
    stack.kube.wait_for(lambda c: stack.kube.rollout_complete("prod", "storefront"), timeout=60)


if __name__ == "__main__":
    main()
