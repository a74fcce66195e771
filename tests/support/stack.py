"""A running portal for tests that talk to it over HTTP as outsiders do (a browser, the CLI, a
pipeline, Schemathesis): uvicorn serving portal.asgi on an ephemeral port, the RQ worker and
the cluster watcher in threads, all on the test database.

`live_server` from pytest-django is WSGI-only (no websockets, no async views), hence uvicorn
in a thread. Tests using this are transactional, since every thread reads what the test wrote.
"""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from tests.factories import Cast, make_cast, make_cluster
from tests.support import run_scheduled_now


class Background:
    """Threads that stop when asked: uvicorn, the RQ worker loop, the cluster watcher."""

    def __init__(self):
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.stoppers = []

    def spawn(self, target, name):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self):
        self.stop.set()
        for stopper in self.stoppers:
            stopper()
        for thread in self.threads:
            thread.join(timeout=10)


def serve(background: Background) -> str:
    import uvicorn

    from portal.asgi import application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, lifespan="off", log_level="warning", ws="websockets-sansio", proxy_headers=False
    )
    server = uvicorn.Server(config)
    background.spawn(lambda: server.run(sockets=[sock]), "uvicorn")
    background.stoppers.append(lambda: setattr(server, "should_exit", True))
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}"


def work_jobs(background: Background) -> None:
    """RQ's SimpleWorker in bursts (its signal handlers only install in the main thread), with the
    scheduler's part: jobs scheduled for later (polls, retries) run when their time comes."""
    import django_rq
    from django.db import close_old_connections, connections
    from rq import SimpleWorker
    from rq.timeouts import TimerDeathPenalty

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty  # SIGALRM, the default, is main-thread only

        def _install_signal_handlers(self):
            pass

    queue = django_rq.get_queue("default")
    worker = ThreadWorker([queue], connection=queue.connection)

    def loop():
        while not background.stop.is_set():
            worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            run_scheduled_now(due_only=True)  # what `rqworker --with-scheduler` does
            close_old_connections()
            background.stop.wait(0.05)
        connections.close_all()

    background.spawn(loop, "rq-worker")


def watch(background: Background, name: str = "tests") -> None:
    from django.db import connections

    from clusters.watcher import Watcher

    watcher = Watcher(name=name, heartbeat_seconds=1.0, watch_timeout=30)
    watcher.stop = background.stop

    def run():
        try:
            watcher.run()
        finally:
            connections.close_all()

    background.spawn(run, "watcher")
    # Its stream threads block in watch requests until the sandbox closes them; join them then.
    background.stoppers.append(lambda: background.threads.extend(watcher.threads.values()))


@dataclass
class Portal:
    url: str
    cast: Cast
    kube: object


@contextmanager
def running_portal(kube, name: str, settings=None):
    """The portal served on an ephemeral port with its worker and watcher (`name`), the cast's
    cluster being the sandbox `kube` (stopped after); with pytest-django's `settings`, the
    portal's own URL is PORTAL_URL (websockets are accepted from that origin only)."""
    import redis
    from django.conf import settings as django_settings

    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
    cast = make_cast(cluster=make_cluster(name="main", api_url=kube.url))
    background = Background()
    background.stoppers.append(kube.stop)
    try:
        url = serve(background)
        if settings is not None:
            settings.PORTAL_URL = url
        work_jobs(background)
        watch(background, name=name)
        yield Portal(url, cast, kube)
    finally:
        background.close()


def in_thread(func, *args, **kwargs):
    """Run `func` in another thread: Playwright keeps an event loop running in this one, and
    the broadcast after commit (async_to_sync) refuses to run beside a running loop."""
    from django.db import connections

    def call():
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result(timeout=60)
