"""A stateful property-based test of the failure path (Hypothesis RuleBasedStateMachine).

Random sequences of what people and faults do to a service in two environments — a direct
one (the portal patches the Deployment) and a Jenkins one (a deploy job does) — against the
sandbox cluster and the sandbox Jenkins, on PostgreSQL and Redis, with the real clients:
request and approve good, crash-looping and unpullable releases, roll back, cancel, turn
auto-rollback on and off, take the Kubernetes API down for a moment, make Jenkins answer 5xx,
lose queued jobs, let the worker and the reconciler run a little, or until all settles.

At every step: each timeline is numbered 1..N without a gap or a repeat; no rollback goes to
a release whose latest deployment there failed, none rolls back a rollback, none passes a
newer deployment; no deploy job was ever triggered twice for one deployment. Once settled:
nothing is left in flight or owed to the cluster, and what the cluster runs is what the final
states say (the last success, the failed template, or what a cancel restored).

`pytest --hypothesis-profile=long tests/test_failure_model.py` runs many more and longer
sequences (see tests/conftest.py for the profiles).
"""

import time

import django_rq
import pytest
from django.db.models import Count, Max
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from clusters.models import Environment
from releases import flows, rules, states
from releases.models import Build, BuildEvent, Deployment, DeploymentEvent
from releases.reconcile import reconcile
from sandbox.jenkins import start as start_jenkins
from tests.factories import make_deployment, make_release, make_service
from tests.support import run_scheduled_now

SETTLE_SECONDS = 90
SUFFIX = {"good": "", "crash": "-crash", "missing": "-missing"}


def expect_refusal(refusal: rules.Refused, *acceptable: str, conflict: bool = False) -> None:
    """A refusal is a legitimate outcome of a step only for these reasons."""
    if conflict and refusal.conflict:
        return
    if not any(a in reason for reason in refusal.reasons for a in acceptable):
        raise AssertionError(f"refused for an unexpected reason: {refusal.reasons}")


def describe(pair, image) -> str:
    """The pair's history, for a failure message: what each deployment did and said."""
    lines = [f"the cluster runs {image}"]
    for d in pair.order_by("pk"):
        lines.append(f"#{d.pk} {d.kind} {d.release.version} {d.state} before={d.image_before} followup={d.followup!r}")
        lines += [f"    {e.seq} {e.kind}: {e.message[:160]}" for e in d.events.exclude(kind="log").order_by("seq")]
    return "\n".join(lines)


class World:
    """The sandboxes, the environments and the worker the machine drives."""

    def __init__(self, cast, kube, jenkins, run_jobs):
        self.cast, self.kube, self.jenkins, self.run_jobs = cast, kube, jenkins, run_jobs
        self.services = 0

    def env(self, slug) -> Environment:
        return Environment.objects.get(slug=slug)

    def new_service(self):
        self.services += 1
        service = make_service(
            slug=f"model-{self.services}", image_repository=f"registry.example/model-{self.services}"
        )
        first = make_release(service, version="1.0.0")
        for env in (self.cast.dev, self.cast.staging):
            self.kube.create_deployment(
                env.namespace, service.k8s_deployment, first.image, replicas=2, progressDeadlineSeconds=3
            )
            make_deployment(first, env, state=states.SUCCEEDED)
        for env in (self.cast.dev, self.cast.staging):
            self.kube.wait_for(lambda c, env=env: self.kube.rollout_complete(env.namespace, service.k8s_deployment), 60)
        return service

    def retire(self, service) -> None:
        """Take a finished example's Deployments (and so their ReplicaSets and pods) out of the
        sandbox cluster: one sandbox serves every example, and one that keeps all their objects
        spends ever longer on each controller pass (after an hour of the long profile its reads
        timed out while a pass held the lock)."""
        for env in (self.cast.dev, self.cast.staging):
            self.kube.cluster.delete("deployments", env.namespace, service.k8s_deployment)

    def work(self) -> None:
        """One round of what the worker and the reconciler do."""
        self.run_jobs(later=False)
        run_scheduled_now()
        reconcile()

    def busy(self, service) -> bool:
        under_way = Deployment.objects.filter(service=service, state__in=states.ACTIVE)
        return under_way.exists() or Deployment.objects.filter(service=service).exclude(followup="").exists()

    def settle(self, service) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while self.busy(service):
            assert time.monotonic() < deadline, f"stuck: {list(self.stuck(service))}"
            self.work()
            time.sleep(0.05)

    def stuck(self, service):
        rows = Deployment.objects.filter(service=service).exclude(state__in=states.FINAL, followup="")
        return rows.values_list("pk", "kind", "state", "followup", "release__version")


class FailurePath(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self):
        super().__init__()
        self.world.kube.resume_http()  # an outage of the previous example is over
        self.world.jenkins.clear_faults()
        self.service = self.world.new_service()
        self.versions = 0

    # -- what people do ----------------------------------------------------------------------

    images = st.sampled_from(["good", "good", "crash", "missing"])

    @rule(image=images)
    def deploy_direct(self, image):
        self.request("dev", image)

    @rule(image=images)
    def deploy_through_jenkins(self, image):
        self.request("staging", image)

    def request(self, env, image):
        self.versions += 1
        release = make_release(self.service, version=f"1.{self.versions}.0{SUFFIX[image]}")
        try:
            flows.request_deployment(self.world.cast.alice, release, self.world.env(env))
        except rules.Refused as refusal:
            expect_refusal(refusal, conflict=True)  # only "something is under way here" may refuse

    @rule(env=st.sampled_from(["dev", "staging"]))
    def roll_back(self, env):
        try:
            flows.rollback(self.world.cast.alice, self.service, self.world.env(env))
        except rules.Refused as refusal:
            expect_refusal(refusal, "already has", "no earlier good release", "was a rollback to", "Nothing has been")

    @rule(env=st.sampled_from(["dev", "staging"]))
    def cancel(self, env):
        active = Deployment.objects.filter(service=self.service, environment__slug=env, state__in=states.CANCELLABLE)
        for deployment in active:
            try:
                flows.cancel(self.world.cast.alice, deployment, "changed my mind")
            except rules.Refused as refusal:
                expect_refusal(refusal, "too late", conflict=True)

    @rule(env=st.sampled_from(["dev", "staging"]), on=st.booleans())
    def auto_rollback(self, env, on):
        Environment.objects.filter(slug=env).update(auto_rollback=on)

    # -- what goes wrong ---------------------------------------------------------------------

    @rule(trouble=st.sampled_from(["kube down briefly", "kube down", "jenkins 5xx", "jobs lost"]))
    def something_goes_wrong(self, trouble):
        if trouble.startswith("kube"):
            self.world.kube.pause_http(seconds=0.3 if "briefly" in trouble else 2.0)
        elif trouble == "jenkins 5xx":
            self.world.jenkins.set_fault(status=503, count=3)
        else:
            queue = django_rq.get_queue("default")
            queue.empty()
            for job_id in queue.scheduled_job_registry.get_job_ids():
                queue.scheduled_job_registry.remove(job_id, delete_job=True)

    # -- time passing ------------------------------------------------------------------------

    @rule()
    def work(self):
        self.world.work()

    @rule()
    def settle(self):
        self.world.settle(self.service)
        self.check_settled()

    def teardown(self):
        self.world.settle(self.service)
        self.check_settled()
        self.world.retire(self.service)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def timelines_are_gapless(self):
        FailurePath.steps = getattr(FailurePath, "steps", 0) + 1
        for model, parent, rows in (
            (DeploymentEvent, "deployment", Deployment.objects.filter(service=self.service)),
            (BuildEvent, "build", Build.objects.filter(service=self.service)),
        ):
            stats = (
                model.objects.filter(**{f"{parent}__in": rows}).values(parent).annotate(n=Count("pk"), top=Max("seq"))
            )
            last = dict(rows.values_list("pk", "last_seq"))
            for row in stats:
                assert row["n"] == row["top"] == last[row[parent]], (parent, row, last[row[parent]])

    @invariant()
    def rollbacks_follow_the_rules(self):
        for rollback in Deployment.objects.filter(service=self.service, kind=Deployment.ROLLBACK).select_related(
            "rolls_back"
        ):
            undone = rollback.rolls_back
            assert undone.kind == Deployment.DEPLOY, f"#{rollback.pk} rolls back a rollback"
            pair = Deployment.objects.filter(service=self.service, environment_id=rollback.environment_id)
            between = pair.filter(pk__gt=undone.pk, pk__lt=rollback.pk, started_at__isnull=False)
            assert not between.exists(), f"#{rollback.pk} passes a newer deployment"
            before = pair.filter(pk__lt=rollback.pk, release=rollback.release, state__in=states.FINAL).order_by("-pk")
            # A failure that never reached the cluster says nothing about its release.
            ran = before.exclude(state__in=[states.CANCELLED, states.REJECTED])
            latest = ran.exclude(state=states.FAILED, started_at__isnull=True).first()
            assert latest is not None, f"#{rollback.pk} goes to a release that never ran here"
            assert latest.state == states.SUCCEEDED, f"#{rollback.pk} goes to a release that failed here"

    @invariant()
    def deploy_jobs_ran_once(self):
        asked = [b.params.get("DEPLOYMENT_ID") for b in self.world.jenkins.builds("deploy")]
        asked += [q.params.get("DEPLOYMENT_ID") for q in self.world.jenkins.state.queue.values() if not q.left]
        assert len(asked) == len(set(asked)), asked

    def check_settled(self):
        for env in (self.world.cast.dev, self.world.cast.staging):
            pair = Deployment.objects.filter(service=self.service, environment=env)
            assert not pair.filter(state__in=states.ACTIVE).exists(), describe(pair, "?")
            assert not pair.exclude(followup="").exists(), describe(pair, "?")
            running = self.world.kube.deployment(env.namespace, self.service.k8s_deployment)
            image = running["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image in possible_images(pair), describe(pair, image)
            latest = pair.filter(started_at__isnull=False).order_by("-pk").first()
            if latest.state == states.SUCCEEDED:
                assert image == latest.release.image, describe(pair, image)
                assert self.world.kube.rollout_complete(env.namespace, self.service.k8s_deployment)


def possible_images(pair) -> set[str]:
    """What the cluster may run after the pair's history, replayed by the final states' rules.

    A success installs its image; a failure that the cluster took (generation seen) leaves its
    template; a failure the cluster never took may or may not have landed (a deploy job that
    died after its patch); a cancel restores the image recorded before it (or, if none could be
    recorded, leaves the template it paused).
    """
    images: set[str] = set()
    for d in pair.filter(started_at__isnull=False).order_by("pk"):
        if d.state == states.SUCCEEDED or (d.state == states.FAILED and d.generation):
            images = {d.release.image}
        elif d.state == states.FAILED:
            images = images | {d.release.image}
        elif d.state == states.CANCELLED:
            images = {d.image_before} if d.image_before else images | {d.release.image}
    return images


@pytest.fixture
def world(cast_tx, make_kube, run_jobs, settings):
    settings.RECONCILE_INTERVAL_SECONDS = 0
    settings.JENKINS_POLL_SECONDS = 0.05
    kube = make_kube(ready_after=0.05)
    jenkins = start_jenkins(kube_url=kube.url, queue_seconds=0.05, build_seconds=0.2, seed={"jobs": {"deploy": {}}})
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = jenkins.url, jenkins.user, jenkins.token
    cast_tx.cluster.api_url = kube.url
    cast_tx.cluster.save()
    Environment.objects.filter(slug__in=["dev", "staging"]).update(
        required_approvals=0, requires_previous=False, progress_deadline_seconds=10
    )
    Environment.objects.filter(slug="staging").update(deploy_via=Environment.JENKINS, jenkins_deploy_job="deploy")
    cast_tx.dev.refresh_from_db()
    cast_tx.staging.refresh_from_db()
    yield World(cast_tx, kube, jenkins, run_jobs)
    jenkins.stop()


def test_it_keeps_every_rule_through_random_failures_retries_and_lost_jobs(world):
    FailurePath.world = world
    run_state_machine_as_test(FailurePath)
