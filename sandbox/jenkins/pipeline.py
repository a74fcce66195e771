"""Running builds: each queue item gets a thread that waits, starts a build and prints its log.

A build is a list of `Step`s (log text plus an optional action) spread evenly over the
build's duration. The log looks like a declarative pipeline's console output. Stopping a
build sets its `abort` event, which wakes the thread between steps.

Build parameters that script the behaviour (all optional):

    SANDBOX_RESULT=SUCCESS|FAILURE|ABORTED|UNSTABLE   outcome (default: seed, else SUCCESS)
    SANDBOX_DURATION=<seconds>                         build run time
    SANDBOX_QUEUE=<seconds>                            time spent in the queue
    SANDBOX_CANCEL_QUEUE=1                             the queue item is cancelled instead
    SANDBOX_LOG_LINES=<n>                              extra lines printed by the build stage

A job seeded with `sh` commands runs them after the tests, each with `/bin/sh -xe` as the
`sh` step does, in a fresh workspace, with the build's parameters, the variables Jenkins sets
(BUILD_NUMBER, BUILD_URL, JOB_NAME, WORKSPACE, GIT_COMMIT, …) and the seed's `env`; their
output goes to the console and a non-zero exit fails the build.
"""

import hashlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import deploy, junit
from .model import RESULTS, Build, Jenkins, JobConfig, QueueItem, now_ms
from .notify import Notifier

DEFAULT_TESTS = 42


class StepFailed(Exception):
    """A step ended the build as FAILURE; args are the lines to print."""


@dataclass
class Step:
    text: str = ""
    action: Callable[[Build], str | None] | None = None
    always: bool = False  # footer steps still run after a failure or an abort


def lines(*texts: str, always: bool = False) -> list[Step]:
    return [Step(f"{t}\n", always=always) for t in texts]


@dataclass
class Runner:
    state: Jenkins
    notifier: Notifier
    build_seconds: float
    queue_seconds: float
    kube_url: str | None = None
    kube_token: str | None = None

    # -- queue ------------------------------------------------------------------------------

    def submit(self, job: str, params: dict[str, str], user: str) -> QueueItem:
        wait = _float(params.get("SANDBOX_QUEUE"), self.effective(job, params).queue)
        item = self.state.enqueue(job, params, user, wait)
        threading.Thread(target=self._run, args=(item,), name=f"build-{item.id}", daemon=True).start()
        return item

    def resume(self) -> None:
        """After a restart: waiting queue items wait out the rest of their time, and running
        builds carry on from the step they were at, as a durable pipeline does."""
        with self.state.lock:
            waiting = [q for q in self.state.queue.values() if not q.left]
            running = self.state.running_builds()
        for item in waiting:
            threading.Thread(target=self._run, args=(item,), name=f"build-{item.id}", daemon=True).start()
        for build in running:
            stamp = time.strftime("%a %b %d %H:%M:%S %Z %Y")
            self.state.write(build, f"Resuming build at {stamp} after Jenkins restart\n")
            name = f"run-{build.job}-{build.number}"
            threading.Thread(target=self.execute, args=(build,), name=name, daemon=True).start()

    def effective(self, job: str, params: dict[str, str]) -> JobConfig:
        """The job's seeded config, with sandbox defaults and SANDBOX_* parameters applied."""
        base = self.state.config_for(job)
        result = (params.get("SANDBOX_RESULT") or base.result).upper()
        return base.merged(
            duration=_float(params.get("SANDBOX_DURATION"), base.duration or self.build_seconds),
            queue=base.queue if base.queue is not None else self.queue_seconds,
            log_lines=_int(params.get("SANDBOX_LOG_LINES"), base.log_lines),
            result=result if result in RESULTS else "SUCCESS",
        )

    def _run(self, item: QueueItem) -> None:
        remaining = item.in_queue_since / 1000 + item.wait_seconds - time.time()
        if item.cancel.wait(max(0.0, remaining)):
            return
        if item.params.get("SANDBOX_CANCEL_QUEUE") in ("1", "true", "yes"):
            self.state.cancel(item.id)
            return
        build = self.state.start_build(item, self.effective(item.job, item.params))
        if build is None:
            return
        self._notify(build, "QUEUED", item.in_queue_since)
        self._notify(build, "STARTED", build.timestamp)
        self.execute(build)

    # -- build ------------------------------------------------------------------------------

    def execute(self, build: Build) -> None:
        steps = self.plan(build)
        delay = build.config.duration / max(1, len(steps))
        for index in range(build.step, len(steps)):
            step = steps[index]
            if (build.failure or build.abort.is_set()) and not step.always:
                continue
            failure = self._step(build, step)
            self.state.update_build(build, step=index + 1, failure=build.failure or failure)
            if not step.always:
                build.abort.wait(delay)  # a stop wakes the thread early
        self._finish(build, build.failure)

    def _step(self, build: Build, step: Step) -> list[str]:
        self.state.write(build, step.text)
        if step.action is None:
            return []
        try:
            extra = step.action(build)
        except StepFailed as failed:
            self.state.write(build, "".join(f"{line}\n" for line in failed.args))
            return ["ERROR: script returned exit code 1"]
        if extra:
            self.state.write(build, extra)
        return []

    def _finish(self, build: Build, failure: list[str]) -> None:
        if build.abort.is_set():
            result = "ABORTED"
        elif failure:
            result = "FAILURE"
        else:
            result = "UNSTABLE" if build.config.result == "UNSTABLE" else "SUCCESS"
        self.state.update_build(build, result=result, duration=max(1, now_ms() - build.timestamp))
        self._notify(build, "COMPLETED", build.timestamp + build.duration)
        with self.state.lock:
            self.state.write(build, "".join(f"{line}\n" for line in failure) + f"Finished: {result}\n")
            self.state.update_build(build, building=False)
        self._notify(build, "FINALIZED", now_ms())

    def stop(self, build: Build, user: str) -> None:
        """Abort a running build on behalf of `user`; a no-op once it has a result."""
        with self.state.lock:
            if build.result is not None or build.abort.is_set():
                return
            self.state.update_build(build, aborted_by=user)
            self.state.write(build, f"Aborted by {user}\nSending interrupt signal to process\n")
            build.abort.set()

    def _notify(self, build: Build, phase: str, timestamp: int) -> None:
        self.notifier.send(self.state.root_url, build, phase, timestamp)

    # -- the pipeline script ----------------------------------------------------------------

    def plan(self, build: Build) -> list[Step]:
        workspace = build.job.replace("/", "_")
        steps = lines(
            f"Started by user {build.user}",
            "[Pipeline] Start of Pipeline",
            "[Pipeline] node",
            f"Running on built-in in /var/jenkins_home/workspace/{workspace}",
            "[Pipeline] {",
        )
        steps += self._build_stage(build)
        steps += self._test_stage(build)
        if build.config.sh:
            steps += self._sh_stage(build)
        if build.config.result == "ABORTED":
            steps.append(Step(action=lambda b: self.stop(b, b.user)))
        target = deploy.target_from_params(build.params, build.job, build.number)
        if target is not None:
            steps += self._deploy_stage(target)
        if build.config.artifacts:
            steps += lines("[Pipeline] archiveArtifacts", "Archiving artifacts")
        return steps + lines("[Pipeline] }", "[Pipeline] // node", "[Pipeline] End of Pipeline", always=True)

    @staticmethod
    def _stage(name: str, body: list[Step]) -> list[Step]:
        return [*lines("[Pipeline] stage", f"[Pipeline] {{ ({name})"), *body]

    def _build_stage(self, build: Build) -> list[Step]:
        filler = [f"compiling module {i + 1}/{build.config.log_lines}" for i in range(build.config.log_lines)]
        # The half-written line makes progressive readers honour the whole-lines rule.
        body = [
            *lines("[Pipeline] sh", "+ make build"),
            Step("Resolving dependencies... "),
            Step("done\n"),
            *lines(*filler, "[Pipeline] }", "[Pipeline] // stage"),
        ]
        return self._stage("build", body)

    def _test_stage(self, build: Build) -> list[Step]:
        body = [*lines("[Pipeline] sh", "+ make test"), Step(action=self._run_tests)]
        body += lines("[Pipeline] }", "[Pipeline] // stage")
        return self._stage("test", body)

    def _run_tests(self, build: Build) -> str:
        tests = _test_summary(build.config, build.params)
        self.state.update_build(build, tests=tests)
        summary = f"Tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped ✓\n"
        if build.config.result == "FAILURE":
            raise StepFailed(summary.rstrip("\n"), "make: *** [Makefile:12: test] Error 1")
        return summary + "[Pipeline] junit\nRecording test results\n"

    def _sh_stage(self, build: Build) -> list[Step]:
        body = []
        for command in build.config.sh:
            body += [*lines("[Pipeline] sh"), Step(action=lambda b, c=command: self._sh(b, c))]
        return self._stage("publish", body + lines("[Pipeline] }", "[Pipeline] // stage"))

    def _sh(self, build: Build, command: str) -> str:
        """Run one shell step, streaming its output into the console; fail the build on a non-zero exit."""
        with tempfile.TemporaryDirectory(prefix="jenkins-workspace-") as workspace:
            process = subprocess.Popen(
                ["/bin/sh", "-xe", "-c", command],
                cwd=workspace,
                env=self._sh_env(build, workspace),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            threading.Thread(target=_kill_on_abort, args=(build, process), daemon=True).start()
            for line in process.stdout:
                self.state.write(build, line)
            code = process.wait()
        if code != 0:
            raise StepFailed()
        return ""

    def _sh_env(self, build: Build, workspace: str) -> dict[str, str]:
        commit = hashlib.sha1(f"{build.job}:{build.number}".encode(), usedforsecurity=False).hexdigest()
        return {
            **os.environ,
            "BUILD_NUMBER": str(build.number),
            "BUILD_ID": str(build.number),
            "BUILD_URL": f"{self.state.job_url(build.job)}{build.number}/",
            "JOB_NAME": build.job,
            "JOB_BASE_NAME": build.job.rsplit("/", 1)[-1],
            "JENKINS_URL": f"{self.state.root_url}/",
            "WORKSPACE": workspace,
            "GIT_COMMIT": build.params.get("GIT_COMMIT", commit),
            **build.params,
            **build.config.env,
        }

    def _deploy_stage(self, target: deploy.DeployTarget) -> list[Step]:
        body = [*lines("[Pipeline] sh", f"+ {target.command}"), Step(action=self._deployer(target))]
        return self._stage("deploy", body + lines("[Pipeline] }", "[Pipeline] // stage"))

    def _deployer(self, target: deploy.DeployTarget) -> Callable[[Build], str]:
        def run(_build: Build) -> str:
            if not self.kube_url:
                # No cluster configured: behave like a dry pipeline that always succeeds.
                return f"deployment.apps/{target.deployment} image updated\n"
            try:
                return deploy.apply(self.kube_url, self.kube_token, target) + "\n"
            except deploy.DeployError as error:
                raise StepFailed(str(error)) from None

        return run


def _kill_on_abort(build: Build, process: subprocess.Popen) -> None:
    while process.poll() is None:
        if build.abort.wait(0.2):
            process.kill()
            return


def _test_summary(config: JobConfig, params: dict[str, str]) -> dict:
    given = config.tests or {}
    if given:
        tests = {k: int(given.get(k, 0)) for k in ("total", "failed", "skipped")}
    else:
        failed = 2 if config.result in ("FAILURE", "UNSTABLE") else 0
        tests = {"total": DEFAULT_TESTS, "failed": failed, "skipped": 0}
    passed = given.get("passed")
    if junit.fails_tests(params):
        tests["failed"] = max(tests["failed"], min(junit.TESTFAIL_FAILURES, tests["total"] - tests["skipped"]))
        passed = None
    tests["passed"] = int(passed if passed is not None else tests["total"] - tests["failed"] - tests["skipped"])
    return tests


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default
