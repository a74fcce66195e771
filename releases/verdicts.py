"""Verified rollouts: Prometheus checks and a traffic probe while a rollout runs and bakes.

A deployment is *guarded* when its service has a probe URL or enabled checks for its environment
(a rollback never is: it restores what ran, and must not be stopped by the same alarm). From the
moment it is rolling out, `releases.tracking.verify` runs once a VERIFY_INTERVAL_SECONDS (a job
that enqueues itself again; nothing sleeps): each run probes the service with PROBE_REQUESTS
requests and, at most every CHECK_INTERVAL_SECONDS, evaluates the checks against Prometheus.
When the rollout completes, the bake starts (`Verification.bake_seconds` of the environment);
once it is over the checks are evaluated a last time and the deployment succeeds.

A check failing, or the probe failing more than the service allows, fails the deployment with the
query, the value and the threshold in the timeline, and the usual after-failure path follows
(auto-rollback where the environment asks). An unreachable Prometheus is the environment's choice:
wait (the rollout cannot pass until it answers, and fails after the progress deadline), pass
(said in the timeline), or fail.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plumbing import fragments
from plumbing.integrations import IntegrationError, probe, prometheus
from releases import states
from releases.models import Check, CheckSample, Deployment, Entry, Verification

MAX_LATENCIES = 20_000


@dataclass
class Verdict:
    """`failure`: fail the deployment with this sentence. `waiting`: it may not pass yet."""

    failure: str = ""
    waiting: bool = False


def checks_for(deployment: Deployment) -> list[Check]:
    return list(Check.objects.for_rollout(deployment.service_id, deployment.environment_id))


def guarded(deployment: Deployment) -> bool:
    if deployment.is_rollback:
        return False
    return bool(deployment.service.probe_url) or bool(checks_for(deployment))


def start_bake(deployment: Deployment, message: str) -> bool:
    """The rollout completed: bake for the environment's bake time (once; False if already baking)."""
    seconds = Verification.of(deployment.environment).bake_seconds
    entry = Entry(
        "verify",
        f"Rolled out: {message} Verifying for {seconds} s before it counts as succeeded.",
        {"bake_seconds": seconds},
    )
    events = deployment.append(
        [entry],
        where={"state": states.ROLLING_OUT, "bake_started_at__isnull": True},
        bake_started_at=timezone.now(),
        bake_seconds=seconds,
    )
    return events is not None


def baked(deployment: Deployment) -> bool:
    if deployment.bake_started_at is None:
        return False
    return timezone.now() >= deployment.bake_started_at + timedelta(seconds=deployment.bake_seconds)


def evaluate(deployment: Deployment, *, final: bool = False) -> Verdict:
    """One look: a probe round, then the checks when they are due (always when `final`)."""
    verdict = probe_round(deployment)
    if verdict.failure:
        return verdict
    checked_at = (deployment.verification or {}).get("checked_at", 0)
    if final or timezone.now().timestamp() - checked_at >= settings.CHECK_INTERVAL_SECONDS:
        return evaluate_checks(deployment)
    return Verdict(waiting=bool((deployment.verification or {}).get("unreachable_since")))


# -- the probe ---------------------------------------------------------------------------------


def probe_round(deployment: Deployment) -> Verdict:
    url = deployment.service.probe_url_in(deployment.environment)
    if not url:
        return Verdict()
    hits = [probe.hit(url) for _ in range(settings.PROBE_REQUESTS)]
    tally = _add_hits(deployment.pk, url, hits)
    deployment.probe = tally
    allowed = deployment.service.probe_max_failed_percent
    share = 100 * tally["failed"] / tally["requests"]
    if tally["failed"] and share > allowed:
        return Verdict(
            failure=f"Probe of {url}: {tally['failed']} of {tally['requests']} requests failed ({share:.1f} %, "
            f"more than the {allowed:g} % allowed); last: {tally.get('last_failure', '')}."
        )
    return Verdict()


def _add_hits(pk: int, url: str, hits: list[probe.Hit]) -> dict:
    """Add a round's hits to the deployment's tally (row-locked: a second verify run cannot lose any)."""
    with transaction.atomic():
        current = Deployment.objects.select_for_update().values_list("probe", flat=True).get(pk=pk) or {}
        failures = [h for h in hits if not h.ok]
        tally = {
            "url": url,
            "requests": current.get("requests", 0) + len(hits),
            "failed": current.get("failed", 0) + len(failures),
            "latencies_ms": (current.get("latencies_ms", []) + [round(h.ms, 1) for h in hits])[-MAX_LATENCIES:],
            "last_failure": _failure_text(failures[-1]) if failures else current.get("last_failure", ""),
        }
        Deployment.objects.filter(pk=pk).update(probe=tally)
    return tally


def _failure_text(hit: probe.Hit) -> str:
    return f"HTTP {hit.status}" if hit.status else f"no answer ({hit.error})"


# -- the checks --------------------------------------------------------------------------------


def evaluate_checks(deployment: Deployment) -> Verdict:
    now = timezone.now()
    samples, failures, unreachable = [], [], None
    for check in checks_for(deployment):
        promql = check.promql(deployment.environment.namespace)
        try:
            reading = prometheus.query(promql)
        except IntegrationError as error:
            if not error.permanent:
                unreachable = error
                samples.append(_sample(deployment, check, now, None, CheckSample.UNREACHABLE))
                continue
            reading, failure = None, f"Check “{check.name}” could not be evaluated: {error} Query: {promql}"
        else:
            failure = _judge(check, reading, promql)
        outcome = CheckSample.FAIL if failure else CheckSample.NO_DATA if reading.value is None else CheckSample.PASS
        samples.append(_sample(deployment, check, now, reading.value if reading else None, outcome))
        if failure:
            failures.append(failure)
    CheckSample.objects.bulk_create(samples)
    fragments.touch(fragments.REPORT)  # the deployment page's charts (releases.check_charts)
    if failures:
        return Verdict(failure=" ".join(failures))
    return _reachability(deployment, unreachable, now)


def _judge(check: Check, reading: prometheus.Reading, promql: str) -> str:
    """Why the check fails with this reading, or "" when it passes (no data is no failure)."""
    if not reading.single:
        return f"Check “{check.name}” returned {reading.series} series, not one: {promql}"
    if reading.value is None or check.passes(reading.value):
        return ""
    return f"Check “{check.name}” failed: {promql} = {reading.value:g}, which is not {check.rule}."


def _sample(deployment, check: Check, at, value, outcome: str) -> CheckSample:
    return CheckSample(
        deployment=deployment,
        check_rule=check,
        name=check.name,
        at=at,
        value=value,
        threshold=check.threshold,
        outcome=outcome,
    )


def _reachability(deployment: Deployment, error: IntegrationError | None, now) -> Verdict:
    """What an unreachable Prometheus means here, said once in the timeline; notes `checked_at`."""
    notes = dict(deployment.verification or {})
    notes["checked_at"] = now.timestamp()
    verdict = Verdict()
    if error is None:
        if notes.pop("unreachable_since", None) is not None:
            _note(deployment, notes, "Prometheus answers again; the checks go on.")
        else:
            _save(deployment, notes)
        return verdict
    choice = Verification.of(deployment.environment).when_unreachable
    if choice == Verification.FAIL:
        return Verdict(failure=f"{error} This environment fails a rollout its checks cannot judge.")
    if choice == Verification.PASS:
        if not notes.get("passed_unreachable"):
            notes["passed_unreachable"] = True
            _note(deployment, notes, f"{error} The checks pass without it, as this environment asks.")
            return verdict
        _save(deployment, notes)
        return verdict
    return _wait(deployment, notes, error, now)


def _wait(deployment: Deployment, notes: dict, error: IntegrationError, now) -> Verdict:
    limit = deployment.environment.progress_deadline_seconds
    since = notes.setdefault("unreachable_since", now.timestamp())
    if now.timestamp() - since > limit:
        return Verdict(failure=f"{error} Waited {limit} s (the progress deadline) for it to answer.")
    if since == now.timestamp():
        _note(deployment, notes, f"{error} Waiting for it: the rollout cannot pass unchecked.")
        return Verdict(waiting=True)
    _save(deployment, notes)
    return Verdict(waiting=True)


def _note(deployment, notes: dict, message: str) -> None:
    deployment.log("verify", message, verification=notes)


def _save(deployment, notes: dict) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(verification=notes)
    deployment.verification = notes


def passed_summary(deployment: Deployment) -> str:
    """What the success message says was verified."""
    parts = []
    checks = checks_for(deployment)
    if checks:
        parts.append(f"{len(checks)} check{'s' if len(checks) != 1 else ''} held for {deployment.bake_seconds} s")
    summary = deployment.probe_summary
    if summary:
        parts.append(f"probe: {summary['text']}")
    return "; ".join(parts)
