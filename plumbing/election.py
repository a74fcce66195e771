"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` does it.

Several replicas of a process that must act alone (the cluster watcher, the cron scheduler) run
side by side; one holds the Lease and acts, the others stand by and take over when it stops
renewing. The rules (k8s.io/client-go/tools/leaderelection/leaderelection.go):

* Every `retry` seconds each candidate reads the Lease. The holder renews it (a new renewTime);
  a candidate takes it when nobody holds it, or when the record it saw has not changed for
  `lease` seconds *of its own clock* (never comparing clocks across machines).
* Every write is a compare-and-swap on metadata.resourceVersion: of two candidates that saw the
  same expired record, the server accepts one and answers the other 409.
* The fence: a leader may act only until `renew` seconds (< `lease`) after it *sent* its last
  successful renewal. A standby waits `lease` seconds from seeing that renewal, which was written
  after it was sent, so the old leader has stopped before anyone else starts — even when it was
  frozen (a stopped process, a long GC pause) and wakes up late: its deadline is on a monotonic
  clock that kept running.
* On a clean stop the leader releases the Lease (holder emptied), so a rolling update of the
  portal hands over at once instead of after `lease` seconds.
"""

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from plumbing import alive
from plumbing.integrations import IntegrationError, kube

log = logging.getLogger(__name__)
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Terms:
    """Where the Lease is and how long its terms are (client-go's defaults: 15, 10, 2 seconds)."""

    namespace: str
    name: str
    identity: str
    lease: float = 15.0
    renew: float = 10.0
    retry: float = 2.0

    def __post_init__(self):
        if not 0 < self.retry < self.renew < self.lease:
            raise ValueError(
                f"Leader election needs retry < renew deadline < lease duration; got {self.retry}, "
                f"{self.renew}, {self.lease} seconds."
            )


def default_identity() -> str:
    """The pod's name (the downward API's POD_NAME, else the hostname, which is the pod name in a
    pod) and the process id, so two processes on one machine never share an identity."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


def default_namespace() -> str:
    """The namespace of this pod's service account, else `default`."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as handle:
            return handle.read().strip() or "default"
    except OSError:
        return "default"


def _micro_time(at: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """One candidate. `try_acquire_or_renew()` does one round; `is_leader()` is the fence every
    write checks. The clock is monotonic and injectable."""

    def __init__(self, api, terms: Terms, clock: Callable[[], float] = time.monotonic):
        self.api, self.terms, self.clock = api, terms, clock
        self.observed: tuple | None = None  # the last Lease record seen (holder, renewTime, …)
        self.observed_at = 0.0  # when it last changed, on our clock
        self.valid_until = 0.0  # the fence: we may act until then

    def is_leader(self) -> bool:
        return self.clock() < self.valid_until

    def try_acquire_or_renew(self) -> bool:
        """One round: take or renew the Lease if we may; True if we hold it now."""
        sent_at = self.clock()
        lease = kube.read_lease(self.api, self.terms.namespace, self.terms.name)
        if lease is None:
            return self._write(None, sent_at)
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.terms.identity and not self._expired(spec):
            self.valid_until = 0.0  # someone else holds it (also if we thought we did)
            return False
        return self._write(lease, sent_at)

    def release(self) -> None:
        """Give the Lease up at once (a clean shutdown), if we still hold it."""
        if not self.is_leader():
            return
        self.valid_until = 0.0
        try:
            lease = kube.read_lease(self.api, self.terms.namespace, self.terms.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.terms.identity:
                return
            now = _micro_time(datetime.now(UTC))
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
            kube.replace_lease(self.api, self.terms.namespace, lease)
        except IntegrationError as error:
            log.warning("could not release lease %s: %s", self.terms.name, error)

    def _observe(self, spec: dict) -> None:
        record = tuple(spec.get(k) for k in ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions"))
        if record != self.observed:
            self.observed, self.observed_at = record, self.clock()

    def _expired(self, spec: dict) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.terms.lease
        return self.observed_at + duration <= self.clock()

    def _write(self, lease: dict | None, sent_at: float) -> bool:
        now = _micro_time(datetime.now(UTC))
        spec = (lease or {}).get("spec") or {}
        renewing = spec.get("holderIdentity") == self.terms.identity
        new_spec = {
            "holderIdentity": self.terms.identity,
            "leaseDurationSeconds": int(self.terms.lease),
            "acquireTime": spec.get("acquireTime") if renewing else now,
            "renewTime": now,
            "leaseTransitions": spec.get("leaseTransitions", 0) + (0 if renewing or lease is None else 1),
        }
        try:
            if lease is None:
                body = {"metadata": {"name": self.terms.name}, "spec": new_spec}
                written = kube.create_lease(self.api, self.terms.namespace, body)
            else:
                written = kube.replace_lease(self.api, self.terms.namespace, {**lease, "spec": {**spec, **new_spec}})
        except kube.Conflict:
            return self.is_leader()  # another candidate wrote first; our old deadline still holds
        self._observe(written.get("spec") or {})
        self.valid_until = sent_at + self.terms.renew
        return True


class Campaign:
    """Runs an Elector in a thread for the life of a process, calling `on_start` when it becomes
    leader and `on_stop` when it stops being one (lost, or `stop()`), and touching the liveness
    file every round while it stands by."""

    def __init__(self, elector: Elector, on_start: Callable[[], None], on_stop: Callable[[], None]):
        self.elector, self.on_start, self.on_stop = elector, on_start, on_stop
        self.leading = False
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> "Campaign":
        self.thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self.thread.start()
        return self

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.round()
                self.stopping.wait(self._pause())
        finally:
            self._step_down()
            self.elector.release()

    def round(self) -> None:
        try:
            self.elector.try_acquire_or_renew()
        except IntegrationError as error:
            log.warning("leader election %s: %s", self.elector.terms.name, error)
        if self.elector.is_leader() and not self.leading:
            self.leading = True
            log.info("%s leads %s", self.elector.terms.identity, self.elector.terms.name)
            self.on_start()
        elif not self.elector.is_leader():
            self._step_down()
        if not self.leading:
            # A standby is alive while it campaigns; a leader while its own work loop turns (that
            # loop touches the file), so a leader stuck in its work is restarted, not kept.
            alive.touch()

    def _pause(self) -> float:
        """The retry period, but wake at the fence's deadline so `on_stop` is not late."""
        left = self.elector.valid_until - self.elector.clock()
        return max(0.0, min(self.elector.terms.retry, left)) if self.leading else self.elector.terms.retry

    def _step_down(self) -> None:
        if self.leading:
            self.leading = False
            log.info("%s no longer leads %s", self.elector.terms.identity, self.elector.terms.name)
            self.on_stop()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)


def campaign(lease_name: str, on_start: Callable[[], None], on_stop: Callable[[], None]) -> Campaign:
    """A Campaign for `lease_name` on the settings' terms (LEADER_ELECTION_*), against the cluster
    this process runs in (kube.local_client)."""
    terms = Terms(
        namespace=settings.LEADER_ELECTION_NAMESPACE or default_namespace(),
        name=lease_name,
        identity=default_identity(),
        lease=settings.LEADER_ELECTION_LEASE_SECONDS,
        renew=settings.LEADER_ELECTION_RENEW_SECONDS,
        retry=settings.LEADER_ELECTION_RETRY_SECONDS,
    )
    api = kube.local_client(timeout=terms.retry)
    return Campaign(Elector(api, terms), on_start, on_stop)
