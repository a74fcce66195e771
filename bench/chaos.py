"""Chaos: rollouts through the whole stack while its processes are killed with SIGKILL.

Every process of the portal runs as the demo runs it, each in its own process group: the web
server (uvicorn on portal.asgi), the RQ worker (`rqworker default --with-scheduler`), the RQ
cron scheduler (`rqcron portal.cron`, the reconciler), the cluster watcher (`watch_clusters`),
the sandbox cluster and the sandbox Jenkins, on a fresh PostgreSQL database (created and
dropped here) and a redis-server of its own on a free port (no persistence, so a restart loses
every queued job, as a crashed Redis without a disk does).

A small cast is seeded: services in four environments, two patched directly by the portal and
two deployed by a Jenkins deploy job, auto-rollback on in one of each; the Jenkins environment
with auto-rollback wants one approval, given by an approver over the REST API (through the
web process). Then N rollouts (good images and `-crash` images, round robin over the
(service, environment) lanes; each lane one rollout after another) are requested through
releases.flows, while a fault thread `kill -9`s the worker, watcher, web or cron process group,
or restarts Redis, at random moments, and restarts it after a short random delay as a
supervisor would.

Each rollout is judged once its lane has settled (generous timeout), and every lane again at
the end:

- correct: a good rollout succeeded and the cluster runs its image, rolled out; a `-crash`
  rollout failed, and where auto-rollback is on exactly one automatic rollback succeeded and
  the cluster runs the last good release again, rolled out; where it is off, nothing rolled it
  back and the cluster keeps its template. In both, the image the deployment recorded as
  "before" is what the cluster ran before it.
- stuck: not final (or still owing the cluster a follow-up) after the settle timeout.
- lost events: gaps in a timeline's seq 1..N (every deployment and build).
- duplicate events: a repeated seq, a second "patched" transition or cluster change of one
  deployment, or a second Jenkins deploy job for one deployment (the sandbox Jenkins' builds
  and queue).

It prints progress to stderr and exactly one line to stdout:

    chaos: N rollouts, F faults, C correct, S stuck, L lost events, D duplicate events

and exits non-zero unless C = N and S = L = D = 0. Every process it started is killed (its
whole group) on exit, Ctrl-C or failure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam .venv/bin/python bench/chaos.py \
        [--rollouts 48] [--seed 1] [--settle 240]

Only the server of DATABASE_URL is used; the database is `pampam_chaos_bench` (`--database`).
"""

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.http import listening  # noqa: E402

TOKEN = "pampam-chaos"
REPLICAS = 2
DEADLINE_SECONDS = 15  # each environment's progress deadline (the sandbox pods crash well before)
PORTAL_PROCESSES = ("worker", "watcher", "web", "cron")
FAULT_TARGETS = (*PORTAL_PROCESSES, "redis")
# (slug, deploy via, auto-rollback, required approvals)
ENVIRONMENTS = (
    ("dev", "direct", True, 0),
    ("qa", "direct", False, 0),
    ("stage", "jenkins", True, 1),
    ("uat", "jenkins", False, 0),
)
SERVICES = ("cart", "search", "checkout")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- the processes -----------------------------------------------------------------------------


class Stack:
    """Every process of the run, each in its own process group, restartable by name."""

    def __init__(self, workdir: Path, env: dict):
        self.workdir, self.env = workdir, env
        self.commands: dict[str, list[str]] = {}
        self.ports: dict[str, int] = {}
        self.running: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def define(self, name: str, argv: list[str], port: int | None = None) -> None:
        self.commands[name] = argv
        if port:
            self.ports[name] = port

    def start(self, name: str) -> None:
        with self.lock, open(self.workdir / f"{name}.log", "ab") as log:
            self.running[name] = subprocess.Popen(
                self.commands[name],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: a kill takes its children too
                preexec_fn=_die_with_parent,
            )
        if name in self.ports:
            wait_for(lambda: self._answers(name), f"{name} on port {self.ports[name]}")

    def _answers(self, name: str) -> bool:
        if self.running[name].poll() is not None:
            raise RuntimeError(f"{name} exited; see {self.workdir / (name + '.log')}")
        return listening(self.ports[name])

    def kill(self, name: str) -> None:
        """SIGKILL the process group and every descendant, as the loss of its container would.

        Descendants too: rq's work horse (the fork running a job) puts itself in a process group
        of its own (os.setpgrp), so killing the worker's group alone lets the job run on.
        """
        with self.lock:
            process = self.running.pop(name, None)
        if process is None:
            return
        for pid in [process.pid, *descendants(process.pid)]:
            for kill, target in ((os.killpg, pid), (os.kill, pid)):
                try:
                    kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        process.wait()

    def stop_all(self) -> None:
        for name in list(reversed(self.running)):
            self.kill(name)

    def exited(self) -> list[str]:
        """Processes that died by themselves (not by a fault): a supervisor would restart them."""
        with self.lock:
            return [name for name, process in self.running.items() if process.poll() is not None]


def descendants(root: int) -> list[int]:
    """Every process below `root` (from /proc), children before their children."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command may hold spaces and parentheses: the fields after the last ")" are fixed.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _die_with_parent() -> None:
    """Linux: a child gets SIGKILL if this script dies without cleaning up (kill -9 of it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def define_stack(stack: Stack, workdir: Path) -> None:
    python, manage = sys.executable, str(ROOT / "manage.py")
    ports = {name: free_port() for name in ("redis", "kube", "jenkins", "web")}
    stack.define(
        "redis",
        [shutil.which("redis-server") or "redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        ports["redis"],
    )
    stack.define(
        "kube",
        [python, "-m", "sandbox.kube", "--port", str(ports["kube"]), "--ready-after", "0.5"]
        + ["--crash-backoff", "0.5", "--seed", str(workdir / "kube-seed.json")],
        ports["kube"],
    )
    notify = f"http://127.0.0.1:{ports['web']}/hooks/jenkins/?token={TOKEN}"
    stack.define(
        "jenkins",
        [python, "-m", "sandbox.jenkins", "--port", str(ports["jenkins"]), "--user", "pampam", "--token", TOKEN]
        + ["--kube-url", f"http://127.0.0.1:{ports['kube']}", "--notify-url", notify, "--queue-seconds", "0.3"]
        + ["--build-seconds", "1", "--executors", "4", "--seed", str(workdir / "jenkins-seed.json")],
        ports["jenkins"],
    )
    stack.define(
        "web",
        [python, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(ports["web"])]
        + ["--log-level", "warning", "--no-proxy-headers"],
        ports["web"],
    )
    stack.define("worker", [python, manage, "rqworker", "default", "--with-scheduler"])
    stack.define("cron", [python, manage, "rqcron", "portal.cron"])
    stack.define("watcher", [python, manage, "watch_clusters"])


def portal_environment(stack: Stack, database_url: str) -> dict:
    web = f"http://127.0.0.1:{stack.ports['web']}"
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{stack.ports['redis']}/0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "pampam-chaos-bench",
        "DEBUG": "0",
        "PORTAL_URL": web,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": web,
        "JENKINS_URL": f"http://127.0.0.1:{stack.ports['jenkins']}",
        "JENKINS_USER": "pampam",
        "JENKINS_TOKEN": TOKEN,
        "JENKINS_WEBHOOK_SECRET": TOKEN,
        "JENKINS_POLL_SECONDS": "1",
        "RECONCILE_INTERVAL_SECONDS": "5",
        "WATCHER_STALE_SECONDS": "20",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PYTHONUNBUFFERED": "1",
    }


# -- the database and the cast -----------------------------------------------------------------


def admin_url(database_url: str) -> str:
    return urlsplit(database_url)._replace(path="/postgres").geturl()


def create_database(database_url: str) -> None:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(admin_url(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(database_url: str) -> None:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    try:
        with psycopg.connect(admin_url(database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as error:
        say(f"could not drop {name}: {error}")


@dataclass
class Lane:
    """One (service, environment) pair; its rollouts run one after another."""

    service: object
    environment: object
    last_good: object  # the release a rollback here restores
    running: str  # the image the cluster runs now, as far as the judged history says


@dataclass
class Rollout:
    lane: Lane
    crash: bool
    version: str
    deployment: int | None = None
    before: str = ""  # what the cluster ran before it
    last_good: object = None  # what an automatic rollback must restore
    cluster: dict = field(default_factory=dict)  # what the cluster ran once it settled
    verdict: str = "not run"  # correct | stuck | wrong: …
    seconds: float = 0.0  # from the request until its lane settled


def seed(kube_url: str, workdir: Path) -> tuple[dict, list[Lane]]:
    """The cast, the environments and the first release of each service, succeeded everywhere."""
    from django.contrib.auth.models import Group, User

    from clusters.models import Cluster, Environment
    from releases import states
    from releases.api.models import ApiToken
    from releases.models import Deployment, Release, Service

    developers = Group.objects.create(name="developers")
    approvers = Group.objects.create(name="approvers")
    alice = User.objects.create_user("alice", password="pampam-chaos-bench")
    alice.groups.add(developers)
    carol = User.objects.create_user("carol", password="pampam-chaos-bench")
    carol.groups.add(approvers)
    cluster = Cluster.objects.create(name="chaos", api_url=kube_url)
    lanes, kube, jobs = [], [], {}
    for position, (slug, via, auto, approvals) in enumerate(ENVIRONMENTS, start=1):
        env = Environment.objects.create(
            slug=slug,
            name=slug.title(),
            position=position,
            cluster=cluster,
            namespace=f"chaos-{slug}",
            deployer_group=developers,
            approver_group=approvers,
            required_approvals=approvals,
            requires_previous=False,
            deploy_via=via,
            jenkins_deploy_job=f"deploy-{slug}" if via == "jenkins" else "",
            progress_deadline_seconds=DEADLINE_SECONDS,
            auto_rollback=auto,
        )
        if env.jenkins_deploy_job:
            jobs[env.jenkins_deploy_job] = {}
        for name in SERVICES:
            service, _ = Service.objects.get_or_create(
                slug=name,
                defaults={
                    "name": name.title(),
                    "image_repository": f"registry.example/{name}",
                    "k8s_deployment": name,
                    "k8s_container": name,
                },
            )
            first, _ = Release.objects.get_or_create(
                service=service, version="1.0.0", defaults={"image": f"registry.example/{name}:1.0.0"}
            )
            Deployment.objects.create(
                service=service, environment=env, release=first, state=states.SUCCEEDED, requested_by=alice
            )
            kube.append(
                {
                    "namespace": env.namespace,
                    "name": name,
                    "container": name,
                    "image": first.image,
                    "replicas": REPLICAS,
                    "spec": {"progressDeadlineSeconds": DEADLINE_SECONDS},
                }
            )
            lanes.append(Lane(service, env, first, first.image))
    (workdir / "kube-seed.json").write_text(
        json.dumps({"namespaces": [f"chaos-{e[0]}" for e in ENVIRONMENTS], "deployments": kube})
    )
    (workdir / "jenkins-seed.json").write_text(json.dumps({"jobs": jobs}))
    _, approver_token = ApiToken.issue(carol, "chaos-approver", ["approve"])
    return {"alice": alice, "carol": carol, "approver_token": approver_token}, lanes


# -- faults ------------------------------------------------------------------------------------


class Faults:
    """kill -9 of a portal process group or of Redis at random moments; restarted after a short
    random delay, as a supervisor would. Processes that exit by themselves are restarted too.

    It runs in the main thread: a child gets SIGKILL when the *thread* that started it ends
    (PR_SET_PDEATHSIG), so every start happens here, in the thread that lives longest.
    """

    def __init__(self, stack: Stack, rng: random.Random):
        self.stack, self.rng = stack, rng
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.restarts = 0

    def run_until(self, done) -> None:
        while not self._wait(self.rng.uniform(0.5, 4.0), done):
            target = self.rng.choice(FAULT_TARGETS)
            self.stack.kill(target)
            self.count += 1
            self.kinds[target] = self.kinds.get(target, 0) + 1
            self._wait(self.rng.uniform(0.2, 3.0))
            self.stack.start(target)
            self.restart_exited()

    def _wait(self, seconds: float, done=None) -> bool:
        """Sleep `seconds` (restarting what exits meanwhile); True as soon as `done()` holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if done is not None and done():
                return True
            self.restart_exited()
            time.sleep(0.1)
        return done is not None and done()

    def restart_exited(self) -> None:
        for name in self.stack.exited():
            self.restarts += 1
            self.stack.kill(name)
            self.stack.start(name)


# -- driving the rollouts ----------------------------------------------------------------------


class Cluster:
    """Reads of the sandbox cluster and Jenkins, straight over HTTP."""

    def __init__(self, stack: Stack):
        import requests

        self.http = requests.Session()
        self.kube = f"http://127.0.0.1:{stack.ports['kube']}"
        self.jenkins = f"http://127.0.0.1:{stack.ports['jenkins']}"
        self.web = f"http://127.0.0.1:{stack.ports['web']}"

    def workload(self, lane: Lane) -> dict:
        """The template's image, and whether the rollout is complete (kubectl's rule)."""
        url = f"{self.kube}/apis/apps/v1/namespaces/{lane.environment.namespace}/deployments/{lane.service.slug}"
        obj = self.http.get(url, timeout=10).json()
        spec, status = obj["spec"], obj.get("status") or {}
        replicas = spec.get("replicas", 1)
        complete = (
            status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
        )
        return {"image": spec["template"]["spec"]["containers"][0]["image"], "complete": complete}

    def deploy_jobs_asked(self, jobs: list[str]) -> list[str]:
        """DEPLOYMENT_ID of every deploy job run Jenkins has, queued or started."""
        auth = ("pampam", TOKEN)
        asked = []
        queue = self.http.get(f"{self.jenkins}/queue/api/json", auth=auth, timeout=10).json()
        for item in queue["items"]:
            asked += _parameter_values(item.get("actions") or [], "DEPLOYMENT_ID")
        for job in jobs:
            info = self.http.get(f"{self.jenkins}/job/{job}/api/json", auth=auth, timeout=10).json()
            for ref in info.get("builds") or []:
                build = self.http.get(f"{self.jenkins}/job/{job}/{ref['number']}/api/json", auth=auth, timeout=10)
                asked += _parameter_values(build.json().get("actions") or [], "DEPLOYMENT_ID")
        return asked

    def approve(self, deployment: int, token: str, timeout: float) -> None:
        """Approve over the REST API; the web process may be down (retry) or the answer lost (a
        retry then hears "already decided", which is the same outcome)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = self.http.post(
                    f"{self.web}/api/v1/deployments/{deployment}/approve/",
                    json={"comment": "chaos"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if reply.status_code < 500:
                return
            time.sleep(0.5)


def _parameter_values(actions: list[dict], name: str) -> list[str]:
    return [p.get("value") for a in actions for p in a.get("parameters") or [] if p.get("name") == name]


class Driver:
    def __init__(self, cast: dict, cluster: Cluster, settle: float):
        self.cast, self.cluster, self.settle = cast, cluster, settle
        self.done = 0
        self.lock = threading.Lock()

    def run_lane(self, rollouts: list[Rollout]) -> None:
        from django.db import connections

        try:
            for rollout in rollouts:
                self.run_one(rollout)
                with self.lock:
                    self.done += 1
                    say(
                        f"{self.done} rollouts done; #{rollout.deployment} {rollout.version} in "
                        f"{rollout.lane.environment.slug}: {rollout.verdict} after {rollout.seconds:.0f} s"
                    )
                if rollout.verdict == "stuck":
                    break  # the lane is blocked; what follows never starts (and counts as stuck)
        finally:
            connections.close_all()

    def run_one(self, rollout: Rollout) -> None:
        from releases import flows, rules
        from releases.models import Release

        lane = rollout.lane
        rollout.before, rollout.last_good = lane.running, lane.last_good
        release = Release.objects.create(
            service=lane.service,
            version=rollout.version,
            image=f"{lane.service.image_repository}:{rollout.version}",
            git_sha=f"{random.getrandbits(160):040x}",
        )
        started = time.monotonic()
        try:
            deployment = flows.request_deployment(self.cast["alice"], release, lane.environment)
        except rules.Refused as refusal:
            rollout.verdict = f"wrong: refused: {refusal}"
            return
        rollout.deployment = deployment.pk
        if lane.environment.required_approvals:
            self.cluster.approve(deployment.pk, self.cast["approver_token"], self.settle)
        settled_in_time = self.wait_settled(deployment.pk)
        rollout.seconds = time.monotonic() - started
        if not settled_in_time:
            rollout.verdict = "stuck"
            return
        rollout.cluster = self.cluster.workload(lane)
        rollout.verdict = judge(rollout)
        if rollout.verdict == "correct":
            lane.running = rollout.cluster["image"]
            lane.last_good = rollout.last_good if rollout.crash else release

    def wait_settled(self, pk: int) -> bool:
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            if settled(pk):
                return True
            time.sleep(0.5)
        return False


def settled(pk: int) -> bool:
    """Final, owing the cluster nothing, and nothing else under way in its lane."""
    from releases import states
    from releases.models import Deployment

    deployment = Deployment.objects.get(pk=pk)
    if deployment.state not in states.FINAL or deployment.followup:
        return False
    pair = Deployment.objects.of_pair(deployment.service_id, deployment.environment_id)
    return not pair.active().exists() and not pair.exclude(followup="").exists()


def judge(rollout: Rollout) -> str:
    """What the rules say this rollout must have ended as, against what it did and the cluster runs."""
    from releases import states
    from releases.models import Deployment

    deployment = Deployment.objects.select_related("release", "environment").get(pk=rollout.deployment)
    cluster, image = rollout.cluster, deployment.release.image
    if deployment.image_before != rollout.before:
        return f"wrong: recorded {deployment.image_before!r} as before, the cluster ran {rollout.before}"
    rollbacks = list(Deployment.objects.filter(rolls_back=deployment).select_related("release"))
    if not rollout.crash:
        if deployment.state != states.SUCCEEDED or rollbacks:
            return f"wrong: a good release ended {deployment.state} with {len(rollbacks)} rollbacks"
        return _runs(cluster, image)
    if deployment.state != states.FAILED:
        return f"wrong: a crashing release ended {deployment.state}"
    if not deployment.environment.auto_rollback:
        if rollbacks:
            return "wrong: rolled back where auto-rollback is off"
        return "correct" if cluster["image"] == image else f"wrong: the cluster runs {cluster['image']}"
    if len(rollbacks) != 1:
        return f"wrong: {len(rollbacks)} rollbacks"
    rollback = rollbacks[0]
    if not rollback.automatic or rollback.state != states.SUCCEEDED:
        return f"wrong: its rollback #{rollback.pk} ended {rollback.state} (automatic={rollback.automatic})"
    if rollback.release_id != rollout.last_good.pk:
        return f"wrong: rolled back to {rollback.release.version}, the last good was {rollout.last_good.version}"
    return _runs(cluster, rollout.last_good.image)


def _runs(cluster: dict, image: str) -> str:
    if cluster["image"] != image:
        return f"wrong: the cluster runs {cluster['image']}, not {image}"
    return "correct" if cluster["complete"] else f"wrong: {image} is not rolled out"


def plan(lanes: list[Lane], count: int, rng: random.Random) -> list[list[Rollout]]:
    """`count` rollouts round robin over the lanes, about two in five of them crashing."""
    per_lane: list[list[Rollout]] = [[] for _ in lanes]
    for n in range(count):
        index = n % len(lanes)
        crash = rng.random() < 0.4
        version = f"1.{n + 1}.0" + ("-crash" if crash else "")
        per_lane[index].append(Rollout(lanes[index], crash, version))
    return [rollouts for rollouts in per_lane if rollouts]


# -- counting ----------------------------------------------------------------------------------


TIMELINE_SQL = """
    SELECT coalesce(sum(greatest(parent.last_seq, coalesce(e.top, 0)) - coalesce(e.distinct_seqs, 0)), 0),
           coalesce(sum(coalesce(e.n, 0) - coalesce(e.distinct_seqs, 0)), 0)
    FROM {parent} parent LEFT JOIN (
        SELECT {fk} AS parent_id, count(*) AS n, count(DISTINCT seq) AS distinct_seqs, max(seq) AS top
        FROM {events} GROUP BY {fk}
    ) e ON e.parent_id = parent.id
"""
# A deployment changes the cluster once: one "patched" transition, one recorded change.
REPEATED_CHANGES_SQL = """
    SELECT coalesce(sum(n - 1), 0) FROM (
        SELECT deployment_id, count(*) AS n FROM releases_deploymentevent
        WHERE (kind = 'state' AND data->>'to' = 'rolling_out') OR (kind = 'cluster' AND message LIKE 'Changing %%')
        GROUP BY deployment_id, kind HAVING count(*) > 1
    ) repeated
"""


def timeline_faults() -> tuple[int, int]:
    """(lost, duplicate) events over every deployment and build timeline."""
    from django.db import connection

    lost = duplicate = 0
    with connection.cursor() as cursor:
        for parent, events, fk in (
            ("releases_deployment", "releases_deploymentevent", "deployment_id"),
            ("releases_build", "releases_buildevent", "build_id"),
        ):
            cursor.execute(TIMELINE_SQL.format(parent=parent, events=events, fk=fk))
            gaps, repeats = cursor.fetchone()
            lost, duplicate = lost + int(gaps), duplicate + int(repeats)
        cursor.execute(REPEATED_CHANGES_SQL)
        duplicate += int(cursor.fetchone()[0])
    return lost, duplicate


def repeated_deploy_jobs(cluster: Cluster) -> int:
    asked = cluster.deploy_jobs_asked([f"deploy-{slug}" for slug, via, *_ in ENVIRONMENTS if via == "jenkins"])
    return len(asked) - len(set(asked))


def recheck(lanes_rollouts: list[list[Rollout]], cluster: Cluster) -> None:
    """At the end, the last rollout of each lane again: still settled, and nothing may have moved
    the cluster since."""
    for rollouts in lanes_rollouts:
        judged = [r for r in rollouts if r.verdict == "correct"]
        if not judged:
            continue
        last = judged[-1]
        now = cluster.workload(last.lane)
        if not settled(last.deployment):
            last.verdict = "stuck"
        elif now != last.cluster:
            last.verdict = f"wrong: the cluster moved to {now} after it settled"
        if last.verdict != "correct":
            say(f"#{last.deployment} {last.version}: {last.verdict} at the end")


def wait_quiet(timeout: float) -> bool:
    """Nothing active and nothing owed to the cluster anywhere."""
    from releases import states
    from releases.models import Deployment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = Deployment.objects.filter(state__in=states.ACTIVE).exists()
        if not busy and not Deployment.objects.exclude(followup="").exists():
            return True
        time.sleep(0.5)
    return False


# -- the run -----------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Rollouts under kill -9 of every portal process and Redis.")
    parser.add_argument("--rollouts", type=int, default=48)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=240, help="seconds a rollout may take to settle")
    parser.add_argument("--database", default="pampam_chaos_bench", help="dropped and re-created, then dropped")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    return parser.parse_args()


def install_cleanup(stack: Stack, database_url: str, workdir: Path, keep_logs: bool) -> None:
    done = threading.Event()

    def cleanup() -> None:
        if done.is_set():
            return
        done.set()
        stack.stop_all()
        from django.db import connections

        connections.close_all()
        drop_database(database_url)
        if keep_logs:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def interrupted(signum, _frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup()
        os._exit(128 + signum)

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)


def start_stack(args) -> tuple[Stack, dict, list[Lane]]:
    database_url = (
        urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/pampam")
        ._replace(path=f"/{args.database}")
        .geturl()
    )
    workdir = Path(tempfile.mkdtemp(prefix="pampam-chaos-"))
    stack = Stack(workdir, {})
    define_stack(stack, workdir)
    stack.env = {**os.environ, **portal_environment(stack, database_url)}
    os.environ.update(portal_environment(stack, database_url))
    install_cleanup(stack, database_url, workdir, args.keep_logs)
    create_database(database_url)
    stack.start("redis")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    cast, lanes = seed(f"http://127.0.0.1:{stack.ports['kube']}", workdir)
    for name in ("kube", "jenkins", "web", "worker", "cron", "watcher"):
        stack.start(name)
    say(f"stack up in {workdir}: {', '.join(f'{n}:{p}' for n, p in stack.ports.items())}")
    return stack, cast, lanes


def main() -> int:
    args = arguments()
    rng = random.Random(args.seed)
    random.seed(args.seed)
    stack, cast, lanes = start_stack(args)
    cluster = Cluster(stack)
    lanes_rollouts = plan(lanes, args.rollouts, rng)
    driver = Driver(cast, cluster, args.settle)
    faults = Faults(stack, rng)
    threads = [threading.Thread(target=driver.run_lane, args=(r,), daemon=True) for r in lanes_rollouts]
    for thread in threads:
        thread.start()
    faults.run_until(lambda: not any(thread.is_alive() for thread in threads))
    faults.restart_exited()
    say(
        f"{faults.count} faults {faults.kinds}; {faults.restarts} processes exited by themselves "
        "(rq's worker and scheduler quit when Redis goes away) and were restarted; settling"
    )
    if not wait_quiet(args.settle):
        say("something is still under way or owed to the cluster after the settle timeout")
    recheck(lanes_rollouts, cluster)
    rollouts = [r for rs in lanes_rollouts for r in rs]
    correct = sum(r.verdict == "correct" for r in rollouts)
    stuck = sum(r.verdict in ("stuck", "not run") for r in rollouts)
    for r in rollouts:
        if r.verdict != "correct":
            say(f"#{r.deployment} {r.lane.service.slug} in {r.lane.environment.slug} {r.version}: {r.verdict}")
    times = sorted(r.seconds for r in rollouts if r.seconds)
    if times:
        say(f"settled in {statistics.median(times):.0f} s (median), {times[-1]:.0f} s (slowest)")
    lost, duplicate = timeline_faults()
    duplicate += repeated_deploy_jobs(cluster)
    print(
        f"chaos: {len(rollouts)} rollouts, {faults.count} faults, {correct} correct, {stuck} stuck, "
        f"{lost} lost events, {duplicate} duplicate events",
        flush=True,
    )
    ok = correct == len(rollouts) and stuck == lost == duplicate == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
