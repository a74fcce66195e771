"""What waiting for a deployment through the API costs: N clients long-polling
`GET /api/v1/deployments/<id>/?after_seq=S&wait=30` on a real uvicorn process.

Prints, measured in one run:
- the floor: a plain detail request (no wait), median latency;
- how long after an event commits the waiting clients get their answer (p50/p95), and its
  ratio to the floor;
- the database transactions per second while the N clients wait, against the same N clients
  polling once a second (what a pipeline does without long-poll);
- the web process's threads while they wait, against idle.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_bench REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/api_longpoll.py [--clients 100] [--rounds 10] [--quick]

The database named by DATABASE_URL is dropped and re-created.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ws_latency import ROOT, free_port, fresh_database, percentile, setup_django


def make_world():
    from django.contrib.auth.models import Group, User

    from clusters.models import Cluster, Environment
    from releases.api.models import ApiToken
    from releases.models import Deployment, Release, Service

    group = Group.objects.create(name="approvers")
    cluster = Cluster.objects.create(name="bench", api_url="http://127.0.0.1:1")
    env = Environment.objects.create(
        slug="staging", name="Staging", cluster=cluster, namespace="staging", required_approvals=1, approver_group=group
    )
    service = Service.objects.create(
        slug="storefront", name="Storefront", image_repository="r/storefront", k8s_deployment="s", k8s_container="s"
    )
    release = Release.objects.create(service=service, version="1.0.0", image="r/storefront:1.0.0")
    user = User.objects.create_user("pipeline")
    deployment = Deployment.objects.create(
        service=service, environment=env, release=release, requested_by=user, required_approvals=1
    )
    deployment.log("requested", "pipeline requested Storefront 1.0.0 in Staging.")
    _, token = ApiToken.issue(user, "bench", ["read"])
    return deployment, token


def transactions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def floor(url: str, headers: dict, samples: int = 50) -> float:
    session = requests.Session()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        session.get(url, headers=headers, timeout=10).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[5:])


class Waiters:
    """N threads, each long-polling from the seq it last saw, recording when answers arrive."""

    def __init__(self, url: str, headers: dict, clients: int, after: int):
        self.url, self.headers = url, headers
        self.after = after
        self.arrivals: list[list[float]] = [[] for _ in range(clients)]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(clients)]
        for thread in self.threads:
            thread.start()

    def run(self, n: int) -> None:
        session = requests.Session()
        after = self.after
        while not self.stop.is_set():
            answer = session.get(self.url, params={"after_seq": after, "wait": 30}, headers=self.headers, timeout=60)
            data = answer.json()
            if data["last_seq"] > after:
                self.arrivals[n].append(time.perf_counter())
                after = data["last_seq"]

    def received(self) -> int:
        return min(len(a) for a in self.arrivals)


def measure_rounds(deployment, waiters: Waiters, rounds: int) -> list[float]:
    latencies = []
    for n in range(rounds):
        time.sleep(0.5)  # every waiter is back to waiting
        deployment.log("note", f"bench event {n}")
        committed = time.perf_counter()
        deadline = committed + 30
        while waiters.received() <= n and time.perf_counter() < deadline:
            time.sleep(0.005)
        latencies += [(arrivals[n] - committed) * 1000 for arrivals in waiters.arrivals if len(arrivals) > n]
    return latencies


def polling_cost(url: str, headers: dict, clients: int, seconds: float) -> float:
    """Transactions per second while `clients` poll once a second (no wait)."""
    stop = threading.Event()

    def poll():
        session = requests.Session()
        while not stop.wait(1.0):
            session.get(url, headers=headers, timeout=10)

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(clients)]
    for thread in pollers:
        thread.start()
    time.sleep(1.5)
    before = transactions()
    time.sleep(seconds)
    rate = (transactions() - before) / seconds
    stop.set()
    for thread in pollers:
        thread.join(timeout=10)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20 clients, 5 rounds")
    args = parser.parse_args()
    clients, rounds = (20, 5) if args.quick else (args.clients, args.rounds)
    fresh_database()
    setup_django()
    deployment, token = make_world()
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    web = start_web(port)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/deployments/{deployment.pk}/"
        floor_ms = floor(url, headers)
        idle_threads = threads_of(web.pid)
        waiters = Waiters(url, headers, clients, deployment.last_seq)
        time.sleep(5.0 + clients * floor_ms / 1000)  # every client has had its first answer and waits
        waiting_threads = threads_of(web.pid)
        # PostgreSQL publishes its counters up to a second late: the first answers settle first.
        before = transactions()
        time.sleep(5.0)
        waiting_rate = (transactions() - before) / 5.0
        latencies = measure_rounds(deployment, waiters, rounds)
        waiters.stop.set()
        deployment.log("note", "bench over")
        polling_rate = polling_cost(url, headers, clients, 5.0)
    finally:
        web.terminate()
        web.wait(timeout=10)
    p50 = statistics.median(latencies)
    print(f"plain GET of a deployment (floor): p50 {floor_ms:.1f} ms")
    print(
        f"{clients} long-polling clients, {rounds} events: answer after commit p50 {p50:.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms "
        f"({len(latencies)} answers; p50 = {p50 / floor_ms:.1f}× the floor)"
    )
    print(
        f"database while {clients} clients wait: {waiting_rate:.1f} transactions/s; "
        f"the same clients polling every second: {polling_rate:.1f} transactions/s"
    )
    print(f"web process threads: {idle_threads} idle, {waiting_threads} with {clients} clients waiting")


def start_web(port: int) -> subprocess.Popen:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port), "--lifespan", "off"]
    web = subprocess.Popen([*command, "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return web
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start") from None
            time.sleep(0.2)


if __name__ == "__main__":
    main()
