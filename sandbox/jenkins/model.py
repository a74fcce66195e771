"""In-memory state of the fake Jenkins: jobs, queue items, builds, faults.

Everything lives behind one re-entrant lock held by `Jenkins`. Handlers and build threads
take it for short critical sections only; no network call is made while holding it.
"""

import hashlib
import threading
import time
from dataclasses import dataclass, field

RESULTS = ("SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "NOT_BUILT")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class JobConfig:
    """Per-job behaviour, from the seed file's `defaults` and `jobs` entries."""

    duration: float | None = None  # seconds; None means the sandbox-wide default
    queue: float | None = None  # seconds spent in the queue
    log_lines: int = 0  # extra filler lines printed by the build stage
    result: str = "SUCCESS"
    tests: dict | None = None  # {"total","failed","passed","skipped"}; None → derived
    artifacts: list[str] = field(default_factory=list)
    description: str | None = None

    def merged(self, **overrides) -> "JobConfig":
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        return JobConfig(**values)


@dataclass
class Build:
    job: str  # full name, "folder/app"
    number: int
    queue_id: int
    params: dict[str, str]
    user: str
    url: str
    config: JobConfig
    enqueued_ms: int
    timestamp: int = field(default_factory=now_ms)
    log: bytearray = field(default_factory=bytearray)
    building: bool = True
    result: str | None = None
    duration: int = 0
    estimated_duration: int = -1
    tests: dict | None = None
    aborted_by: str | None = None
    abort: threading.Event = field(default_factory=threading.Event)

    @property
    def display_name(self) -> str:
        return f"#{self.number}"

    def snapshot(self) -> dict:
        """A plain-dict view for tests and the control endpoint."""
        return {
            "job": self.job,
            "number": self.number,
            "queue_id": self.queue_id,
            "params": dict(self.params),
            "building": self.building,
            "result": self.result,
            "duration": self.duration,
            "log": self.log.decode("utf-8", "replace"),
        }


@dataclass
class QueueItem:
    id: int
    job: str
    params: dict[str, str]
    user: str
    in_queue_since: int = field(default_factory=now_ms)
    wait_seconds: float = 0.0
    cancelled: bool = False
    build: Build | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def left(self) -> bool:
        return self.cancelled or self.build is not None


@dataclass
class JobRecord:
    name: str  # full name
    builds: dict[int, Build] = field(default_factory=dict)
    next_number: int = 1


@dataclass
class Faults:
    """Injected misbehaviour, consumed by the HTTP handler before routing."""

    status: int | None = None
    count: int | None = None  # None → until cleared
    down: bool = False
    delay: float = 0.0

    def take(self) -> "Faults | None":
        """Return the fault that applies to this request (and use up one of its count)."""
        if self.status is None and not self.down and not self.delay:
            return None
        applied = Faults(self.status, self.count, self.down, self.delay)
        if self.count is not None:
            self.count -= 1
            if self.count <= 0:
                self.clear()
        return applied

    def clear(self) -> None:
        self.status, self.count, self.down, self.delay = None, None, False, 0.0


class Jenkins:
    """The whole server state. Methods that mutate take `self.lock`."""

    def __init__(self, user: str, token: str, defaults: JobConfig, jobs: dict[str, JobConfig]):
        self.lock = threading.RLock()
        self.user = user
        self.token = token
        self.crumb = hashlib.sha256(f"crumb:{user}:{token}".encode()).hexdigest()[:32]
        self.defaults = defaults
        self.job_configs = jobs
        self.jobs: dict[str, JobRecord] = {name: JobRecord(name) for name in jobs}
        self.queue: dict[int, QueueItem] = {}
        self.next_queue_id = 1
        self.faults = Faults()
        self.root_url = ""
        self.requests: list[tuple[str, str]] = []

    # -- jobs -------------------------------------------------------------------------------

    def job(self, name: str) -> JobRecord:
        with self.lock:
            return self.jobs.setdefault(name, JobRecord(name))

    def config_for(self, name: str) -> JobConfig:
        return self.job_configs.get(name, self.defaults)

    def children(self, folder: str) -> list[str]:
        """Direct children of `folder` ("" is the root): job and folder short names."""
        prefix = f"{folder}/" if folder else ""
        with self.lock:
            names = [n[len(prefix) :] for n in self.jobs if n.startswith(prefix)]
        return sorted({n.split("/")[0] for n in names if n})

    def is_folder(self, name: str) -> bool:
        return bool(self.children(name))

    def job_url(self, name: str) -> str:
        return self.root_url + "/" + "".join(f"job/{part}/" for part in name.split("/"))

    # -- queue and builds -------------------------------------------------------------------

    def enqueue(self, job: str, params: dict[str, str], user: str, wait: float) -> QueueItem:
        with self.lock:
            self.job(job)
            item = QueueItem(self.next_queue_id, job, params, user, wait_seconds=wait)
            self.queue[item.id] = item
            self.next_queue_id += 1
            return item

    def cancel(self, queue_id: int) -> bool:
        with self.lock:
            item = self.queue.get(queue_id)
            if item is None or item.left:
                return False
            item.cancelled = True
            item.cancel.set()
            return True

    def start_build(self, item: QueueItem, config: JobConfig) -> Build | None:
        """Move a queue item onto an executor; None if it was cancelled meanwhile."""
        with self.lock:
            if item.cancelled:
                return None
            record = self.job(item.job)
            number = record.next_number
            record.next_number += 1
            build = Build(
                job=item.job,
                number=number,
                queue_id=item.id,
                params=item.params,
                user=item.user,
                url=f"{self.job_url(item.job)}{number}/",
                config=config,
                enqueued_ms=item.in_queue_since,
                estimated_duration=self._estimate(record),
            )
            record.builds[number] = build
            item.build = build
            return build

    def _estimate(self, record: JobRecord) -> int:
        done = [b.duration for b in record.builds.values() if not b.building][-3:]
        return sum(done) // len(done) if done else -1

    def get_build(self, job: str, ref: str | int) -> Build | None:
        with self.lock:
            record = self.jobs.get(job)
            if record is None:
                return None
            if isinstance(ref, int) or str(ref).isdigit():
                return record.builds.get(int(ref))
            return self._alias(record, str(ref))

    @staticmethod
    def _alias(record: JobRecord, ref: str) -> Build | None:
        wanted = {
            "lastBuild": lambda b: True,
            "lastCompletedBuild": lambda b: not b.building,
            "lastSuccessfulBuild": lambda b: b.result == "SUCCESS",
            "lastFailedBuild": lambda b: b.result == "FAILURE",
            "lastStableBuild": lambda b: b.result == "SUCCESS",
            "lastUnsuccessfulBuild": lambda b: b.result not in (None, "SUCCESS"),
        }.get(ref)
        if wanted is None:
            return None
        matches = [b for n, b in sorted(record.builds.items(), reverse=True) if wanted(b)]
        return matches[0] if matches else None

    def write(self, build: Build, text: str) -> None:
        with self.lock:
            build.log.extend(text.encode("utf-8"))

    def all_builds(self) -> list[Build]:
        with self.lock:
            return [b for r in self.jobs.values() for b in r.builds.values()]
