"""Fan-out: N websocket clients watch one rollout on /ws/deployments/<id>/, next to the floor.

Same real processes as bench/ws_latency.py (uvicorn + watch_clusters, sandbox cluster here).
The clients (the `websockets` library, one asyncio loop) connect in batches, then the rollout
runs for real: the deployment is patched in the sandbox cluster (10 replicas), the watcher
turns what it sees into progress events. To get a sample large enough for a p95, `--notes`
extra timeline events are written alongside at a steady rate. Each event carries the time it
was written (`DeploymentEvent.created_at`); a client's latency is receive time minus that.
Every client must receive every seq from 1 to the last exactly once.

The floor, measured in the same run: a bare `websockets` server (its own process, as the portal
is) that the same number of the same clients connect to, and that broadcasts the same events
(encoded once each, stamped with the time it sends them) on the schedule the portal's run wrote
them. The clients ask for no compression (inflating every frame in one client process would
make the clients the bottleneck), so neither server compresses. `--web N` runs N uvicorn
worker processes, which share the load through Redis.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_bench REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/ws_fanout.py --clients 200 1000 [--web 2]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ws_latency import ROOT, Stack, free_port, fresh_database, make_world, percentile, session_headers, setup_django


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
    """The rollout for real (patch + watcher), plus steady notes; in a process of its own, as a
    worker would be (in this one, the clients' busy loop would hold up the writes and their
    broadcasts, which the floor's sender does not suffer)."""
    import django
    from django.db import connections

    django.setup()

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

    # No compression: inflating every frame in this one client process would make the clients,
    # not the server, the bottleneck (and it is the same for the portal and the floor).
    async with websockets.connect(
        url, additional_headers=headers, open_timeout=60, max_queue=None, compression=None
    ) as ws:
        ready.set()
        while not done.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            frame = json.loads(raw)
            # Several messages to a frame when this client was behind (plumbing.fanout).
            for message in frame if isinstance(frame, list) else [frame]:
                if message.get("type") == "event":
                    received.append((message["seq"], now - datetime.fromisoformat(message["at"]).timestamp()))


async def connect_all(url: str, headers: dict, clients: int, done: asyncio.Event):
    """Connect `clients` clients in batches of 50; returns (inboxes, tasks, seconds taken)."""
    inboxes = [[] for _ in range(clients)]
    tasks, started = [], time.perf_counter()
    for batch in range(0, clients, 50):
        readies = []
        for i in range(batch, min(batch + 50, clients)):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(client(url, headers, inboxes[i], ready, done)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    return inboxes, tasks, time.perf_counter() - started


def result(clients: int, connect_seconds: float, expected: list[int], inboxes: list, state: str) -> dict:
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
        "state": state,
    }


async def fan_out(stack: Stack, headers: dict, deployment_pk: int, clients: int, notes: int, rate: float) -> dict:
    from releases.models import Deployment

    url = stack.url.replace("http", "ws") + f"/ws/deployments/{deployment_pk}/?after=1"
    done = asyncio.Event()
    inboxes, tasks, connect_seconds = await connect_all(url, headers, clients, done)
    await asyncio.sleep(1.0)
    writer = multiprocessing.get_context("spawn").Process(
        target=run_rollout_and_notes, args=(deployment_pk, notes, rate)
    )
    writer.start()
    await asyncio.to_thread(writer.join)

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
    return result(clients, connect_seconds, list(range(2, last + 1)), inboxes, "succeeded" if over else "unfinished")


def schedule_of(deployment_pk: int) -> list[tuple[float, dict]]:
    """The events the clients were sent (seq 2 on), with when each was written, from the first."""
    from releases.models import DeploymentEvent

    events = list(DeploymentEvent.objects.filter(deployment_id=deployment_pk, seq__gte=2).order_by("seq"))
    first = events[0].created_at
    return [((e.created_at - first).total_seconds(), e.as_message()) for e in events]


async def floor(schedule: list[tuple[float, dict]], clients: int) -> dict:
    """The same clients on a bare `websockets` server broadcasting the same events."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(schedule, file)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-floor", str(port), "--clients", str(clients), "--schedule", file.name],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.to_thread(server.stdout.readline)  # "listening"
        done = asyncio.Event()
        inboxes, tasks, connect_seconds = await connect_all(f"ws://127.0.0.1:{port}/", {}, clients, done)
        deadline = time.monotonic() + schedule[-1][0] + 120
        while any(len(inbox) < len(schedule) for inbox in inboxes) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
        os.unlink(file.name)
    return result(clients, connect_seconds, [e["seq"] for _, e in schedule], inboxes, "replayed")


async def serve_floor(port: int, clients: int, schedule_path: str) -> None:
    """The floor server: wait for every client, then broadcast each event once-encoded on schedule."""
    import websockets

    schedule = json.loads(Path(schedule_path).read_text())
    connections, everyone = set(), asyncio.Event()

    async def handler(ws):
        connections.add(ws)
        if len(connections) >= clients:
            everyone.set()
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", port, max_size=None):
        print("listening", flush=True)
        await everyone.wait()
        await asyncio.sleep(1.0)
        start = time.time()
        for offset, event in schedule:
            await asyncio.sleep(max(0.0, start + offset - time.time()))
            websockets.broadcast(connections, json.dumps({**event, "at": datetime.now(UTC).isoformat()}))
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--notes", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0, help="notes per second")
    parser.add_argument("--web", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--schedule", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        asyncio.run(serve_floor(args.serve_floor, args.clients[0], args.schedule))
        return
    fresh_database()
    setup_django()
    deployment = {"namespace": "prod", "name": "storefront", "image": "registry.example/storefront:1.0", "replicas": 10}
    stack = Stack([deployment], ready_after=0.3, web=args.web)
    results, floors = [], []
    try:
        env, (service,), user = make_world(stack.kube.url, ["storefront"])
        headers = session_headers(user, stack.url)
        stack.start_processes()
        for n in args.clients:
            rollout = make_rollout(env, service, user)
            results.append(asyncio.run(fan_out(stack, headers, rollout.pk, n, args.notes, args.rate)))
            patch_back(stack)
            floors.append(asyncio.run(floor(schedule_of(rollout.pk), n)))
    finally:
        stack.stop()
    print(f"portal: {args.web} web process(es); floor: a bare websockets server, same frames, same clients")
    for r, f in zip(results, floors, strict=True):
        print(line(f"{r['clients']:>5} clients", r, f"rollout {r['state']}"))
        print(line(f"floor {f['clients']:>5} clients", f, "same events replayed"))
        print(f"ratio p95 {r['clients']} clients: {r['p95'] / f['p95']:.1f}× the floor")


def line(label: str, r: dict, what: str) -> str:
    return (
        f"{label}: connected in {r['connect_s']:.1f}s; {what}; "
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
