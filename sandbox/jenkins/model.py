"""State of the fake Jenkins: jobs and folders, queue items, builds, executors, faults.

Everything lives behind one re-entrant lock held by `Jenkins`. Handlers and build threads
take it for short critical sections only; no network call is made while holding it.

Jobs exist when the seed names them (with their folders) or a client creates them
(`createItem`); with `any_job` every job path exists, as the sandbox used to behave. Every change
goes through a method here, which also writes it to the state file when there is one
(persist.py), so a restarted sandbox has the same queue ids, build numbers and logs.
"""

import copy
import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from urllib.parse import quote

RESULTS = ("SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "NOT_BUILT")
# Jenkins' Util.rawEncode leaves alphanumerics and these unescaped in a path segment.
RAW_SAFE = "!$&'()*+,-.=@_"


def now_ms() -> int:
    return int(time.time() * 1000)


def raw_encode(name: str) -> str:
    """hudson.Util.rawEncode: one URL path segment as Jenkins writes it (`Store Front` →
    `Store%20Front`, a multibranch `feature%2Fx` → `feature%252Fx`, `~` escaped too)."""
    return quote(name, safe=RAW_SAFE).replace("~", "%7E")


def job_path(name: str) -> str:
    """`a/b` → `job/a/job/b/`, each name encoded as Jenkins does."""
    return "".join(f"job/{raw_encode(part)}/" for part in name.split("/"))


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
    sh: list[str] = field(default_factory=list)  # shell steps run after the tests, as `sh` does
    env: dict[str, str] = field(default_factory=dict)  # extra environment for them (credentials())

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
    step: int = 0  # the pipeline step it runs next (a restarted sandbox resumes there)
    failure: list[str] = field(default_factory=list)  # the lines of a failed step, printed at the end
    executor: int = 0
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

    def record(self, with_log: bool = False) -> dict:
        """The build as the state file keeps it."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("log", "abort", "config")}
        body = copy.deepcopy(body)
        body["config"] = asdict(self.config)
        if with_log:
            body["log"] = self.log.decode("utf-8", "replace")
        return body


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

    def record(self) -> dict:
        return {
            "id": self.id,
            "job": self.job,
            "params": self.params,
            "user": self.user,
            "in_queue_since": self.in_queue_since,
            "wait_seconds": self.wait_seconds,
            "cancelled": self.cancelled,
            "build": [self.build.job, self.build.number] if self.build else None,
        }


@dataclass
class JobRecord:
    name: str  # full name
    builds: dict[int, Build] = field(default_factory=dict)
    next_number: int = 1
    folder: bool = False


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

    def __init__(
        self,
        user: str,
        token: str,
        defaults: JobConfig,
        jobs: dict[str, JobConfig],
        any_job: bool = False,
        password: str | None = None,
        executors: int = 2,
    ):
        self.lock = threading.RLock()
        self.user = user
        self.token = token
        self.password = password
        self.crumb = hashlib.sha256(f"crumb:{user}:{token}".encode()).hexdigest()[:32]
        self.defaults = defaults
        self.job_configs = jobs
        self.any_job = any_job
        self.executors = executors
        self.jobs: dict[str, JobRecord] = {}
        for name in jobs:
            self._add_job(name)
        self.queue: dict[int, QueueItem] = {}
        self.next_queue_id = 1
        self.faults = Faults()
        self.root_url = ""
        self.requests: list[tuple[str, str]] = []
        self.state = None  # persist.JenkinsState, when started with a state file

    # -- jobs -------------------------------------------------------------------------------

    def _add_job(self, name: str, folder: bool = False) -> JobRecord:
        parts = name.split("/")
        for depth in range(1, len(parts)):  # a job's folders exist with it
            parent = "/".join(parts[:depth])
            record = self.jobs.setdefault(parent, JobRecord(parent, folder=True))
            record.folder = True
        return self.jobs.setdefault(name, JobRecord(name, folder=folder))

    def find_job(self, name: str) -> JobRecord | None:
        """The job or folder `name`; with `any_job` any job path answers (reading one does
        not create it: its first build does)."""
        with self.lock:
            record = self.jobs.get(name)
            if record is None and self.any_job and name:
                return JobRecord(name)
            return record

    def job(self, name: str) -> JobRecord:
        """The job `name`, for a build; with `any_job` it is created now."""
        with self.lock:
            record = self.jobs.get(name)
            if record is None and self.any_job and name:
                record = self._add_job(name)
                self._persist({"op": "job", "name": name, "folder": False})
            if record is None:
                raise KeyError(name)
            return record

    def create_job(self, name: str, folder: bool) -> JobRecord | None:
        """createItem: None if an item of that name exists already."""
        with self.lock:
            if name in self.jobs:
                return None
            record = self._add_job(name, folder)
            self._persist({"op": "job", "name": name, "folder": folder})
            return record

    def delete_job(self, name: str) -> None:
        with self.lock:
            for full in [n for n in self.jobs if n == name or n.startswith(f"{name}/")]:
                del self.jobs[full]
            self._persist({"op": "delete_job", "name": name})

    def config_for(self, name: str) -> JobConfig:
        return self.job_configs.get(name, self.defaults)

    def children(self, folder: str) -> list[str]:
        """Direct children of `folder` ("" is the root): job and folder short names."""
        prefix = f"{folder}/" if folder else ""
        with self.lock:
            names = [n[len(prefix) :] for n in self.jobs if n.startswith(prefix)]
        return sorted({n.split("/")[0] for n in names if n})

    def is_folder(self, name: str) -> bool:
        record = self.jobs.get(name)
        return bool(record and record.folder) or bool(self.children(name))

    def job_url(self, name: str) -> str:
        return f"{self.root_url}/{job_path(name)}"

    # -- queue and builds -------------------------------------------------------------------

    def enqueue(self, job: str, params: dict[str, str], user: str, wait: float) -> QueueItem:
        with self.lock:
            self.job(job)
            item = QueueItem(self.next_queue_id, job, params, user, wait_seconds=wait)
            self.queue[item.id] = item
            self.next_queue_id += 1
            self._persist({"op": "queue", "item": item.record()})
            return item

    def cancel(self, queue_id: int) -> bool:
        with self.lock:
            item = self.queue.get(queue_id)
            if item is None or item.left:
                return False
            item.cancelled = True
            item.cancel.set()
            self._persist({"op": "queue", "item": item.record()})
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
                executor=self._free_executor(),
            )
            record.builds[number] = build
            item.build = build
            self._persist({"op": "build", "build": build.record()})
            self._persist({"op": "queue", "item": item.record()})
            return build

    def _free_executor(self) -> int:
        """The lowest executor number no running build holds (beyond `executors`: one-off)."""
        busy = {b.executor for b in self.all_builds() if b.building}
        return next(n for n in range(len(busy) + 1) if n not in busy)

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
            self._persist({"op": "log", "job": build.job, "number": build.number, "text": text})

    def update_build(self, build: Build, **changes) -> None:
        """Change a build's fields (result, duration, step, …) and record that."""
        with self.lock:
            for name, value in changes.items():
                setattr(build, name, value)
            self._persist({"op": "build", "build": build.record()})

    def all_builds(self) -> list[Build]:
        with self.lock:
            return [b for r in self.jobs.values() for b in r.builds.values()]

    def running_builds(self) -> list[Build]:
        return sorted((b for b in self.all_builds() if b.building), key=lambda b: b.executor)

    # -- persistence ------------------------------------------------------------------------

    def _persist(self, record: dict) -> None:
        if self.state is not None:
            self.state.append(self, record)
