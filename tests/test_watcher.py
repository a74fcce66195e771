"""The cluster watcher keeps up whatever happens to it, the API server or its own process.

Real `kubernetes` client against the sandbox cluster; the watcher runs in background threads.
An API server outage is played by a TCP proxy between the portal and the sandbox: closing it
drops every connection and refuses new ones, re-opening it on the same port brings the same
cluster back. A cluster that comes back with other objects (a new one behind the same address)
is played by a second sandbox behind the proxy (test_it_relists_when_*).
"""

import socket
import threading

import pytest
from django.db import OperationalError

from clusters.models import Workload
from clusters.watcher import Watcher
from releases import states, tracking
from releases.models import Deployment
from releases.reconcile import reconcile
from tests.factories import make_service
from tests.support import NAME, REPO, cluster_image, connect, deploy, wait_state, wait_until


class Proxy:
    """A TCP relay on a fixed port that can go down (dropping every connection) and come back."""

    def __init__(self, target_port: int, port: int = 0):
        self.target_port = target_port
        self.port = port
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> "Proxy":
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def down(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone leaves the port bound.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server behind is gone: so is this connection
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def started():
    watchers = []

    def start(**options):
        options.setdefault("heartbeat_seconds", 0.2)
        watcher = Watcher(name=f"test-{len(watchers)}", **options).start()
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.shutdown()


def rolling(cast, run_jobs, version="1.1.0"):
    deployment = deploy(cast, version)
    run_jobs()
    deployment.refresh_from_db()
    assert deployment.state == states.ROLLING_OUT
    return deployment


def state_of(deployment):
    return Deployment.objects.values_list("state", flat=True).get(pk=deployment.pk)


def test_it_lists_again_after_410_gone_and_still_finishes_the_rollout(cast_tx, make_kube, started, run_jobs):
    # No bookmarks: a stream's version then lags behind writes to other kinds, so after a
    # compaction its next watch (every second here) is answered 410 Gone.
    sandbox = make_kube(ready_after=1.0, bookmark_interval=600)
    cast = connect(cast_tx, sandbox)
    watcher = started(watch_timeout=1)
    wait_until(lambda: watcher.relists >= 9)
    deployment = rolling(cast, run_jobs)
    sandbox.compact()
    wait_state(deployment, states.SUCCEEDED)
    assert watcher.expired >= 1
    assert watcher.relists >= 9 + watcher.expired
    assert Workload.objects.get(environment=cast.dev, name=NAME).image == f"{REPO}:1.1.0"


def test_it_reconnects_after_the_api_server_was_down_mid_rollout(cast_tx, make_kube, started, run_jobs):
    sandbox = make_kube(ready_after=1.0)
    proxy = Proxy(sandbox.port).up()
    cast = connect(cast_tx, sandbox)
    cast.cluster.api_url = proxy.url
    cast.cluster.save()
    watcher = started()
    wait_until(lambda: watcher.open_streams() == 9)
    deployment = rolling(cast, run_jobs)

    proxy.down()
    wait_until(lambda: watcher.reconnects >= 3)  # it keeps trying, with backoff
    sandbox.wait_for(lambda c: sandbox.rollout_complete("dev", NAME), timeout=60)
    assert state_of(deployment) == states.ROLLING_OUT  # finished while nobody could see it

    Proxy(sandbox.port, port=proxy.port).up()
    wait_state(deployment, states.SUCCEEDED)
    wait_until(lambda: watcher.open_streams() == 9)


def test_it_relists_when_the_api_server_comes_back_with_other_state(cast_tx, make_kube, started):
    # Another cluster comes back behind the same address: a new sandbox starts from its seed,
    # with new uids and resourceVersions (as a cluster restored from an old backup would). The
    # watcher must drop the old picture and list again.
    first = make_kube()
    proxy = Proxy(first.port).up()
    cast = connect(cast_tx, first)
    cast.cluster.api_url = proxy.url
    cast.cluster.save()
    watcher = started()
    wait_until(lambda: Workload.objects.filter(environment=cast.dev, name=NAME, available=4).exists())
    first.stop()
    proxy.down()
    # Wait until every stream saw the outage. (A server that comes back faster must refuse a
    # watch from the old, now too large, resourceVersion; the sandbox accepts it and stays silent.)
    wait_until(lambda: watcher.open_streams() == 0 and watcher.reconnects >= 9)
    second = make_kube(replicas=2)
    Proxy(second.port, port=proxy.port).up()
    second.wait_for(lambda c: second.rollout_complete("dev", NAME), timeout=60)
    wait_until(lambda: Workload.objects.filter(environment=cast.dev, name=NAME, replicas=2, available=2).exists())
    wait_until(lambda: watcher.open_streams() == 9)


def test_it_loses_nothing_when_the_watcher_is_killed_and_restarted_mid_rollout(cast_tx, make_kube, started, run_jobs):
    sandbox = make_kube(ready_after=1.0)
    kube_cast = connect(cast_tx, sandbox)
    first = started()
    wait_until(lambda: first.open_streams() == 9)
    deployment = rolling(kube_cast, run_jobs)
    first.shutdown()
    sandbox.wait_for(lambda c: sandbox.rollout_complete("dev", NAME), timeout=60)
    assert state_of(deployment) == states.ROLLING_OUT

    started()
    deployment = wait_state(deployment, states.SUCCEEDED)
    assert deployment.revision_after == "2"
    assert Workload.objects.get(environment=kube_cast.dev, name=NAME).expected_image == f"{REPO}:1.1.0"


def test_pages_see_the_cluster_move_while_releases_is_stuck_and_what_releases_failed_on_comes_again(
    cast_tx, make_kube, started, run_jobs, monkeypatch
):
    sandbox = make_kube(ready_after=1.0)
    cast = connect(cast_tx, sandbox)
    watcher = started()
    wait_until(lambda: watcher.open_streams() == 9)
    unstuck, seen = threading.Event(), []
    real = tracking.on_workload_observed

    def stuck_then_failing(workload, progress):
        # Staging and prod have threads of their own; the deploy job (on this thread) reads the
        # cluster itself once.
        if workload.environment_id != cast.dev.pk or threading.current_thread() is threading.main_thread():
            return real(workload, progress)
        seen.append(progress)
        if len(seen) == 1:
            unstuck.wait(120)  # releases is stuck on the first picture of the rollout
        elif len(seen) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        real(workload, progress)

    monkeypatch.setattr(tracking, "on_workload_observed", stuck_then_failing)
    deployment = rolling(cast, run_jobs)

    # The whole rollout reaches the Workload row (what pages show) while releases is stuck.
    def rolled_out():
        workload = Workload.objects.get(environment=cast.dev, name=NAME)
        return workload.image == f"{REPO}:1.1.0" and workload.available == workload.updated == workload.replicas

    wait_until(rolled_out, what="the rolled-out picture on the Workload row")
    assert state_of(deployment) == states.ROLLING_OUT
    assert len(seen) == 1

    # Unstuck, releases fails on the next picture; the watcher records and hands it over again.
    unstuck.set()
    wait_state(deployment, states.SUCCEEDED)
    assert len(seen) >= 3


def test_it_finishes_a_rollout_with_the_reconcile_job_alone(cast_tx, make_kube, run_jobs, settings):
    sandbox = make_kube(ready_after=1.0)
    kube_cast = connect(cast_tx, sandbox)
    deployment = rolling(kube_cast, run_jobs)
    sandbox.wait_for(lambda c: sandbox.rollout_complete("dev", NAME), timeout=60)
    assert state_of(deployment) == states.ROLLING_OUT

    settings.RECONCILE_INTERVAL_SECONDS = 0  # everything counts as not observed lately
    counts = reconcile()
    assert counts["observed"] == 1
    deployment.refresh_from_db()
    assert deployment.state == states.SUCCEEDED
    assert Workload.objects.get(environment=kube_cast.dev, name=NAME).expected_image == f"{REPO}:1.1.0"


def test_it_restarts_an_approved_deployment_whose_job_was_lost(kube_cast, kube, run_jobs, settings):
    deployment = deploy(kube_cast, "1.1.0")
    import django_rq

    django_rq.get_queue("default").empty()  # the doorbell was lost
    settings.RECONCILE_INTERVAL_SECONDS = 0
    Deployment.objects.filter(pk=deployment.pk).update(created_at=deployment.created_at.replace(year=2020))
    assert reconcile()["restarted"] == 1
    run_jobs()
    assert state_of(deployment) in (states.ROLLING_OUT, states.SUCCEEDED)
    assert cluster_image(kube) == f"{REPO}:1.1.0"


def test_it_holds_three_watch_connections_per_namespace_however_many_rollouts_run(kube_cast, kube, started, run_jobs):
    services = [kube_cast.service]
    for n in range(4):
        service = make_service(slug=f"shop-{n}", image_repository=f"registry.example/shop-{n}")
        kube.create_deployment("dev", service.k8s_deployment, f"{service.image_repository}:1.0.0", replicas=3)
        services.append(service)
    watcher = started()
    wait_until(lambda: watch_requests(kube) == 9 and open_at_server(kube) == 9)

    deployments = []
    for service in services:
        kube_cast.service = service
        deployments.append(deploy(kube_cast, "1.1.0"))
    run_jobs()
    open_during = []

    def all_done():
        open_during.append(open_at_server(kube))
        return all(state_of(d) == states.SUCCEEDED for d in deployments)

    wait_until(all_done)
    assert set(open_during) == {9}  # 3 namespaces × (deployments, replicasets, pods)
    assert watch_requests(kube) == 9  # none opened for any rollout
    assert watcher.open_streams() == 9


def watch_requests(sandbox) -> int:
    return sum("watch=true" in r["path"] for r in list(sandbox.requests_log))


def open_at_server(sandbox) -> int:
    with sandbox.cluster.lock:
        return len(sandbox.cluster.watchers)
