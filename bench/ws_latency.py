"""Latency from a change in the (sandbox) cluster to a message on a websocket client.

Runs the real processes: uvicorn serving portal.asgi and `manage.py watch_clusters`, as
subprocesses, against a throw-away PostgreSQL database and a Redis db; the sandbox cluster
and the websocket client (the `websockets` library) live in this process, so one clock times
both ends. Each sample scales the Deployment (2 ↔ 3 replicas) and waits for the first
/ws/activity/ workload message that shows the new replica count. The floor, in the same run:
when the same change reached a bare watch client of the API server (a thread here), i.e. what
no portal can beat; the ratio and the milliseconds above it are the portal's own path. A bare
member of the `activity` group on the channel layer, in this process too, splits that path: the
watcher's part (read the event, record the Workload row, commit, broadcast through Redis) and the
web process's (receive, fan out, write the socket); the last line says where the median goes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_bench REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/ws_latency.py [--samples 200]

The database named by DATABASE_URL is dropped and re-created.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def fresh_database() -> None:
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The sandbox cluster here; web server and watcher as real processes."""

    def __init__(self, deployments: list[dict], ready_after: float = 0.2, web: int = 1):
        from sandbox.kube import start

        self.kube = start(port=0, ready_after=ready_after, seed={"deployments": deployments})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.web = web

    def start_processes(self) -> None:
        # The socket's Origin must be the portal's own (portal/asgi.py).
        env = {**os.environ, "LOG_LEVEL": "WARNING", "PORTAL_URL": self.url}
        python = sys.executable
        self.processes.append(
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "uvicorn",
                    "portal.asgi:application",
                    "--port",
                    str(self.port),
                    "--lifespan",
                    "off",
                    "--log-level",
                    "warning",
                    "--ws",
                    "websockets-sansio",
                    "--no-access-log",
                    *(["--workers", str(self.web)] if self.web > 1 else []),
                ],
                cwd=ROOT,
                env=env,
            )
        )
        self.processes.append(
            subprocess.Popen([python, "manage.py", "watch_clusters"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.kube.stop()


def make_world(kube_url: str, services: list[str]):
    """A cluster, a prod environment and the services; returns (environment, services, user)."""
    from django.contrib.auth.models import User

    from clusters.models import Cluster, Environment
    from releases.models import Service

    cluster = Cluster.objects.create(name="bench", api_url=kube_url)
    env = Environment.objects.create(slug="prod", name="Prod", cluster=cluster, namespace="prod", position=1)
    made = [
        Service.objects.create(
            slug=s, name=s.title(), image_repository=f"registry.example/{s}", k8s_deployment=s, k8s_container=s
        )
        for s in services
    ]
    user = User.objects.create_user("bench", password="bench-password")
    return env, made, user


def session_headers(user, url: str) -> dict:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}", "Origin": url}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(values_ms: list[float]) -> str:
    return (
        f"n={len(values_ms)} p50={statistics.median(values_ms):.1f} ms p95={percentile(values_ms, 95):.1f} ms "
        f"p99={percentile(values_ms, 99):.1f} ms max={max(values_ms):.1f} ms"
    )


class Seen:
    """(when, replica count) of each change an observer saw, read from another thread or task."""

    seen: list[tuple[float, int]]

    async def first(self, replicas: int, since: float) -> float:
        """When the first change to `replicas` after `since` arrived (waiting for it if need be)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            arrived = next((t for t, r in list(self.seen) if t >= since and r == replicas), None)
            if arrived is not None:
                return arrived
            await asyncio.sleep(0.001)
        raise TimeoutError(f"{type(self).__name__} saw no change to {replicas} replicas")


class WatchFloor(Seen):
    """The floor: a bare watch on the namespace's Deployments, read in a thread of this process,
    notes when each change reaches a client of the API server at all."""

    def __init__(self, apps):
        self.seen: list[tuple[float, int]] = []
        self.response = apps.list_namespaced_deployment(
            "prod", watch=True, timeout_seconds=3600, _preload_content=False
        )
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        from kubernetes import watch

        with contextlib.suppress(OSError, ValueError, urllib3.exceptions.HTTPError):
            for line in watch.watch.iter_resp_lines(self.response):
                self.seen.append((time.perf_counter(), json.loads(line)["object"]["spec"]["replicas"]))

    def close(self) -> None:
        self.response.shutdown()


class LayerTap(Seen):
    """A bare member of the `activity` group on the channel layer, in this process: when the
    watcher's broadcast of a change came out of Redis, before any web process handled it. Splits
    the portal's path into the watcher's part (read the event, record the Workload row, commit,
    broadcast) and the web process's (receive, fan out, write the socket)."""

    def __init__(self):
        self.seen: list[tuple[float, int]] = []

    async def start(self) -> None:
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel()
        await self.layer.group_add("activity", self.channel)
        self.reader = asyncio.get_running_loop().create_task(self.read())

    async def read(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            update = message.get("update") or {}
            if update.get("kind") == "workload":
                self.seen.append((time.perf_counter(), update.get("desired")))

    async def close(self) -> None:
        self.reader.cancel()
        await self.layer.group_discard("activity", self.channel)


async def measure(stack: Stack, headers: dict, samples: int) -> tuple[list[float], list[float], list[float]]:
    import websockets
    from kubernetes import client

    config = client.Configuration()
    config.host = stack.kube.url
    apps = client.AppsV1Api(client.ApiClient(config))
    ws_url = stack.url.replace("http", "ws") + "/ws/activity/"
    latencies, floors, broadcasts = [], [], []
    floor = WatchFloor(apps)
    tap = LayerTap()
    await tap.start()
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        await asyncio.sleep(1.0)  # let the watcher's first list settle
        while True:  # drain what the start-up produced
            try:
                await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break
        for n in range(samples):
            replicas = 3 if n % 2 == 0 else 2
            started = time.perf_counter()
            await asyncio.to_thread(
                apps.patch_namespaced_deployment, "storefront", "prod", {"spec": {"replicas": replicas}}
            )
            while not any(m.get("kind") == "workload" and m.get("desired") == replicas for m in await messages(ws)):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
            floors.append((await floor.first(replicas, started) - started) * 1000)
            broadcasts.append((await tap.first(replicas, started) - started) * 1000)
            await asyncio.sleep(0.05)
    floor.close()
    await tap.close()
    return latencies, floors, broadcasts


async def messages(ws) -> list[dict]:
    """The messages of the next frame: one, or several when the client was behind."""
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return frame if isinstance(frame, list) else [frame]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    fresh_database()
    setup_django()
    stack = Stack(
        [{"namespace": "prod", "name": "storefront", "image": "registry.example/storefront:1.0", "replicas": 2}]
    )
    try:
        env, services, user = make_world(stack.kube.url, ["storefront"])
        headers = session_headers(user, stack.url)
        stack.start_processes()
        latencies, floors, broadcasts = asyncio.run(measure(stack, headers, args.samples))
    finally:
        stack.stop()
    print(f"cluster change → /ws/activity/ message (uvicorn + watch_clusters, loopback): {summary(latencies)}")
    print(f"floor: the same change reaching a bare watch client of the API server: {summary(floors)}")
    print(
        f"ratio: p50 {statistics.median(latencies) / statistics.median(floors):.1f}× the floor, "
        f"p95 {percentile(latencies, 95) / percentile(floors, 95):.1f}×; above the floor: "
        f"p50 {statistics.median(latencies) - statistics.median(floors):.1f} ms"
    )
    print(f"the watcher's broadcast leaving Redis (a bare channel-layer reader, no web process): {summary(broadcasts)}")
    watch, broadcast, socket_ = (statistics.median(v) for v in (floors, broadcasts, latencies))
    print(
        f"where the p50 goes: API server → a watch client {watch:.1f} ms; watcher (read the event, record the "
        f"Workload row, commit, broadcast through Redis) {broadcast - watch:.1f} ms; web process (receive, fan "
        f"out, write the socket) {socket_ - broadcast:.1f} ms"
    )


if __name__ == "__main__":
    main()
