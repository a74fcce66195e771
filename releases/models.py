from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from clusters.models import Environment
from plumbing import fragments, live
from plumbing.rows import NewestFirst
from releases import states, tallies
from releases.tallies import DoraFigure, Tally  # noqa: F401  (the app's models are the ones models.py holds)


class CountedOnCreate(models.Model):
    """A row /metrics counts from its creation on, in the transaction that saves it:
    `count_created` is the releases.tallies function that counts a new row. Rows written around
    the models are counted by `manage.py rebuild_tallies`."""

    count_created = None

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        created = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if created:
                self.count_created()


class Service(models.Model):
    """Something the team ships: its repository, build job, image and Kubernetes Deployment."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    github_repo = models.CharField("GitHub repository", max_length=200, blank=True, help_text="owner/name")
    jenkins_build_job = models.CharField(max_length=200, blank=True)
    build_on_push = models.BooleanField(default=False, help_text="Start a build on a push to main.")
    image_repository = models.CharField(max_length=300)
    k8s_deployment = models.CharField("Kubernetes Deployment", max_length=253)
    k8s_container = models.CharField("container", max_length=253)
    grafana_dashboard_uid = models.CharField(max_length=100, blank=True)
    grafana_panel_ids = models.JSONField(default=list, blank=True)
    owner_group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    probe_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Hit a few times a second while a rollout runs and bakes (the service's health endpoint "
        "behind its load balancer; {namespace} is the environment's namespace); leave empty for no probe.",
    )
    probe_max_failed_percent = models.FloatField(
        "probe failures allowed (%)",
        default=0.0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="More failed probe requests than this share fails the deployment (0: any failure does).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("service", args=[self.slug])

    def probe_url_in(self, environment) -> str:
        """The probe URL for a rollout to `environment` ({namespace} filled in)."""
        return self.probe_url.replace("{namespace}", environment.namespace)


class Release(NewestFirst):
    """One built artifact. Immutable: an approval is an approval of exactly this image."""

    SOURCES = [("jenkins", "Jenkins"), ("github", "GitHub"), ("api", "API"), ("manual", "Manual")]

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=100)
    git_sha = models.CharField(max_length=40, blank=True)
    image = models.CharField(max_length=500)
    jenkins_build_url = models.URLField(blank=True)
    test_summary = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=SOURCES, default="manual")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(NewestFirst.Meta):
        constraints = [models.UniqueConstraint(fields=["service", "version"], name="one_release_per_version")]
        indexes = [models.Index(fields=["service", "-created_at"], name="release_service_recent")]

    def __str__(self):
        return f"{self.service.slug} {self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("force_update_immutable", False):
            raise ValueError("Releases are immutable: create a new release instead.")
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("release", args=[self.pk])


@dataclass
class Entry:
    """One timeline event to append: what happened, in words a person reads, and its data."""

    kind: str
    message: str
    data: dict = field(default_factory=dict)
    actor: object = None


class Timeline(models.Model):
    """A row with an append-only timeline numbered 1, 2, 3… without gaps (deployments, builds).

    `append` claims the sequence numbers with one UPDATE that is also a compare-and-swap
    (`where`), inserts the events in the same transaction, and broadcasts them once it
    commits: the timeline, the live stream and the audit trail are the same rows.
    """

    last_seq = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The states in which the row (its `state`) is still under way, and those it ends in.
    active_states: frozenset = frozenset()
    final_states: frozenset = frozenset()

    class Meta:
        abstract = True

    def get_absolute_url(self):
        """The row's page: the URL named after the model (`deployment`, `build`)."""
        return reverse(self._meta.model_name, args=[self.pk])

    @classmethod
    def event_model(cls) -> "type[TimelineEvent]":
        """The TimelineEvent model whose rows are this one's `events`."""
        return cls._meta.get_field("events").related_model

    @property
    def is_active(self) -> bool:
        return self.state in self.active_states

    def ending(self, new: str, fields: dict, now=None) -> dict:
        """`fields` for a move to `new`, with `finished_at` stamped when `new` is a final state."""
        if new in self.final_states:
            fields.setdefault("finished_at", now or timezone.now())
        return fields

    @property
    def group(self) -> str:
        """The Channels group of this row's live stream, e.g. `deployment-42`."""
        return f"{self._meta.model_name}-{self.pk}"

    def append(self, entries: list[Entry], *, where: dict | None = None, **fields) -> list["TimelineEvent"] | None:
        """Append `entries` and set `fields`, only while `where` still holds (None when it did not)."""
        with transaction.atomic():
            moved = (
                type(self)
                .objects.filter(pk=self.pk, **(where or {}))
                .update(last_seq=F("last_seq") + len(entries), **fields)
            )
            if moved != 1:
                return None
            for name, value in fields.items():
                setattr(self, name, value)
            if not entries:
                return []
            self.last_seq = type(self).objects.values_list("last_seq", flat=True).get(pk=self.pk)
            first = self.last_seq - len(entries) + 1
            events = self.event_model().objects.bulk_create(
                self.event_model().for_entry(self, first + i, entry) for i, entry in enumerate(entries)
            )
            self.broadcast(events)
        return events

    def log(self, kind: str, message: str, actor=None, data=None, **fields) -> "TimelineEvent":
        """Append one event that does not change the state (progress, notes, log lines)."""
        return self.append([Entry(kind, message, data or {}, actor)], **fields)[0]

    def broadcast(self, events: list["TimelineEvent"]) -> None:
        live.timeline(self.group, [event.as_message() for event in events])

    def log_tail(self, lines: int = 10) -> str:
        """The last `lines` console lines in this timeline (a failed Jenkins job's reason)."""
        model = self.event_model()
        rows = model.objects.filter(**{model.parent_field: self}, kind="log").order_by("-seq")
        return "\n".join(reversed(list(rows.values_list("message", flat=True)[:lines])))


class TimelineEvent(models.Model):
    """Append-only timeline row, numbered per parent (`seq`)."""

    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=40)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    # The name of the foreign key to the parent Timeline row, and how messages name it.
    parent_field = ""

    class Meta:
        abstract = True

    def __str__(self):
        return f"#{getattr(self, self.parent_field + '_id')}.{self.seq} {self.kind}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Timeline events are append-only.")
        super().save(*args, **kwargs)

    @classmethod
    def for_entry(cls, parent: Timeline, seq: int, entry: Entry) -> "TimelineEvent":
        return cls(**{cls.parent_field: parent}, seq=seq, kind=entry.kind, message=entry.message, data=entry.data)

    def as_message(self) -> dict:
        return {
            "type": "event",
            self.parent_field: getattr(self, self.parent_field + "_id"),
            "seq": self.seq,
            "kind": self.kind,
            "message": self.message,
            "data": self.data,
            "at": self.created_at.isoformat(),
        }


# Sent after a transition commits: deployment, old, new. Notifications, GitHub statuses and
# Grafana annotations listen (see releases.apps), each queueing its own job.
deployment_transitioned = Signal()


class TransitionRefused(Exception):
    """The deployment was not in the state the caller expected (someone else moved it)."""


def _day_start(day, days=0):
    """Midnight (in the current time zone) starting `day` + `days`, or None without a day."""
    if day is None:
        return None
    try:
        day += timedelta(days=days)
    except OverflowError:  # until=9999-12-31: no upper bound
        return None
    return timezone.make_aware(datetime.combine(day, time.min))


class DeploymentQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state__in=states.ACTIVE)

    def guarded(self):
        """Deployments (not rollbacks) held to Prometheus checks or a probe (releases.verdicts)."""
        checks = Check.objects.for_rollout(OuterRef("service_id"), OuterRef("environment_id"))
        return self.filter(Q(service__probe_url__gt="") | Exists(checks), kind=Deployment.DEPLOY)

    def for_page(self):
        """What a deployment's page or a list row shows beside it, in the same query."""
        return self.select_related("service", "environment", "release", "requested_by")

    def for_board(self):
        """For a board's cells (the dashboard, a service's or an environment's row, the API's
        environments): a cell shows the state, release, progress and age, never the reports,
        probe, verification, baseline or downtime documents nor the reasons, which only a
        deployment's own page reads (five JSON documents a cell, ninety cells a dashboard)."""
        return self.defer("baseline", "downtime", "probe", "verification", "reports", "reason", "override_reason")

    def for_history(self):
        """For lists: without the probe's latencies (up to thousands of numbers a deployment),
        which only a deployment's own page reads."""
        return self.for_page().defer("probe")

    def matching(self, *, service=None, environment=None, state=None, requester=None, since=None, until=None):
        """The history filters of /history/ and the API: None (or "") means any. `since` and
        `until` are days, inclusive, bounding created_at itself (not its date) so that the
        deployment_created index serves the range."""
        filters = {
            "service": service,
            "environment": environment,
            "state": state or None,
            "requested_by": requester,
            "created_at__gte": _day_start(since),
            "created_at__lt": _day_start(until, days=1),
        }
        return self.filter(**{k: v for k, v in filters.items() if v is not None})

    def with_rollbacks(self):
        """Each row with the rollbacks that undid it (one more query for a whole page), so a list
        can say "1.4.0-crash failed → rolled back to 1.3.0 (automatic)"."""
        rollbacks = Deployment.objects.select_related("release").order_by("id")
        return self.prefetch_related(models.Prefetch("rollbacks", queryset=rollbacks))

    def of_pair(self, service, environment):
        return self.filter(service=service, environment=environment)

    def create_rollback(self, undoes: "Deployment", target: Release, **fields) -> "Deployment":
        """A deployment of kind rollback that undoes `undoes` by going back to `target`."""
        return self.create(
            service=undoes.service,
            environment=undoes.environment,
            release=target,
            previous_release=undoes.release,
            kind=Deployment.ROLLBACK,
            rolls_back=undoes,
            **fields,
        )

    def rollback_plan(self, service, environment) -> "RollbackPlan":
        """What rolling (service, environment) back would undo and restore, or why it cannot.

        It undoes the newest deployment that changed the cluster and restores the last good
        release before it. Never a rollback of a rollback, never past a newer deployment.
        """
        latest = self.of_pair(service, environment).filter(started_at__isnull=False).order_by("-id").first()
        if latest is None:
            return RollbackPlan(None, None, f"Nothing has been deployed to {environment.name} yet.")
        if latest.is_rollback:
            return RollbackPlan(
                latest,
                None,
                f"The last change in {environment.name} was a rollback to {latest.release.version}: "
                "deploy a newer release rather than roll back a rollback.",
            )
        target = latest.last_good_before()
        if target is None:
            return RollbackPlan(latest, None, f"There is no earlier good release of {service.name} to go back to.")
        return RollbackPlan(latest, target, "")


def _percentile(ordered: list[float], p: int) -> float:
    """Nearest-rank percentile of an ordered, non-empty list."""
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass
class RollbackPlan:
    """A rollback of a (service, environment): the deployment it undoes and the release it restores."""

    undoes: "Deployment | None"
    target: Release | None
    refusal: str  # why there is no rollback to offer, when target is None

    def __bool__(self) -> bool:
        return self.target is not None


def jenkins_run_fields(asked_for: str) -> tuple:
    """The columns that find a Jenkins run again after a crash, for a build and for a deployment's
    deploy job alike: when it was asked for (`asked_for` says what a re-run does with it), its
    queue item, then the build's number and URL."""
    return (
        models.DateTimeField(null=True, blank=True, help_text=asked_for),
        models.BigIntegerField(null=True, blank=True),
        models.BigIntegerField(null=True, blank=True),
        models.URLField(blank=True),
    )


class Deployment(CountedOnCreate, Timeline, NewestFirst):
    """A release going to an environment, or a rollback; its timeline is DeploymentEvent rows."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    KINDS = [(DEPLOY, "Deploy"), (ROLLBACK, "Rollback")]
    # Work owed to the cluster after a final state, re-rung by the reconciler until done.
    STOP = "stop"  # cancelled after touching the cluster: pause or undo it
    AUTO_ROLLBACK = "auto_rollback"  # failed in an environment that rolls back by itself
    FOLLOWUPS = [("", "None"), (STOP, "Stop the rollout"), (AUTO_ROLLBACK, "Roll back automatically")]
    active_states = states.ACTIVE
    final_states = states.FINAL
    # Counted once created; its state then moves only through `transition`, which counts too.
    count_created = tallies.deployment_created

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    # An environment owns its history: with deployments it can be archived, never deleted.
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    previous_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=KINDS, default=DEPLOY)
    rolls_back = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rollbacks",
        help_text="The deployment this rollback undoes.",
    )
    automatic = models.BooleanField(default=False, help_text="Started by the portal itself (auto-rollback).")
    state = models.CharField(max_length=20, choices=states.CHOICES, default=states.PENDING_APPROVAL)
    reason = models.TextField(blank=True)
    override_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    required_approvals = models.PositiveIntegerField(default=0)
    jenkins_asked_at, jenkins_queue_id, jenkins_build_number, jenkins_build_url = jenkins_run_fields(
        "When the deploy job was asked for: a re-run looks for it before asking again."
    )
    jenkins_log_offset = models.BigIntegerField(default=0)
    # What the cluster ran just before this deployment changed it, recorded before the change.
    image_before = models.CharField(max_length=500, blank=True)
    revision_before = models.CharField(max_length=20, blank=True)
    # The Progressing condition before the change: an outcome is never judged from it.
    baseline = models.JSONField(default=dict, blank=True)
    revision_after = models.CharField(max_length=20, blank=True)
    generation = models.BigIntegerField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    min_available = models.IntegerField(null=True, blank=True)
    downtime = models.JSONField(default=dict, blank=True)
    followup = models.CharField(max_length=20, choices=FOLLOWUPS, blank=True, default="")
    # Verified rollouts (releases/verdicts.py): the bake after the rollout completed, what the
    # probe saw ({"requests", "failed", "latencies_ms"}) and the verify job's own notes.
    bake_started_at = models.DateTimeField(null=True, blank=True)
    bake_seconds = models.PositiveIntegerField(default=0)
    probe = models.JSONField(default=dict, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    github_deployment_id = models.BigIntegerField(null=True, blank=True)
    grafana_annotation_id = models.BigIntegerField(null=True, blank=True)
    # Outside systems told about this deployment: {"github": {"state", "error", "at"}, ...}.
    reports = models.JSONField(default=dict, blank=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta(NewestFirst.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(state__in=sorted(states.ACTIVE)),
                name="one_active_deployment",
                violation_error_message="This service already has an active deployment here.",
            )
        ]
        indexes = [
            models.Index(fields=["created_at"], name="deployment_created"),
            models.Index(fields=["service", "environment", "-id"], name="deployment_service_env"),
            models.Index(fields=["environment", "-id"], name="deployment_env_recent"),
            models.Index(fields=["state", "-id"], name="deployment_state_recent"),
            models.Index(fields=["requested_by", "-id"], name="deployment_requester_recent"),
            # DORA windows: an environment's deployments finished between two dates.
            models.Index(fields=["environment", "finished_at"], name="deployment_env_finished"),
            # The reconciler's "what is still owed to the cluster" is a handful of rows.
            models.Index(fields=["followup"], condition=~Q(followup=""), name="deployment_followup"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.service.slug} {self.release.version} → {self.environment.slug}"

    @property
    def is_rollback(self) -> bool:
        return self.kind == self.ROLLBACK

    @property
    def state_label(self) -> str:
        return states.label(self.state, self.kind)

    @property
    def tone(self) -> str:
        return states.tone(self.state, self.kind)

    @property
    def probe_summary(self) -> dict | None:
        """What the traffic probe saw: counts, latency percentiles and "312 requests, 0 failed, p99 41 ms"."""
        tally = self.probe or {}
        if not tally.get("requests"):
            return None
        latencies = sorted(tally.get("latencies_ms") or [0])
        p50, p95, p99 = (_percentile(latencies, p) for p in (50, 95, 99))
        return {
            "requests": tally["requests"],
            "failed": tally.get("failed", 0),
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "url": tally.get("url", ""),
            "text": f"{tally['requests']} requests, {tally.get('failed', 0)} failed, p99 {p99:.0f} ms",
        }

    def last_good_before(self) -> Release | None:
        """The last good release before this deployment: the release of the newest earlier
        succeeded deployment of the same service and environment, other than this one's own
        release, and never a release whose latest deployment there failed. A failure that never
        reached the cluster (refused before it started) says nothing about its release."""
        earlier = (
            Deployment.objects.of_pair(self.service_id, self.environment_id)
            .filter(Q(state=states.SUCCEEDED) | Q(state=states.FAILED, started_at__isnull=False), pk__lt=self.pk)
            .exclude(release_id=self.release_id)
            .order_by("-id")
            .values_list("release_id", "state")[:200]
        )
        seen = set()
        # Two columns of up to 200 rows, then the one release: not 200 deployments and releases.
        for release_id, state in earlier:
            if release_id in seen:
                continue
            seen.add(release_id)  # only the release's latest deployment there counts
            if state == states.SUCCEEDED:
                return Release.objects.get(pk=release_id)
        return None

    def transition(self, new: str, *, kind: str = "state", message: str, actor=None, data=None, **fields):
        """Move from the state this instance holds to `new`, or raise TransitionRefused.

        Compare-and-swap: the UPDATE only matches while the row is still in our state, so two
        workers racing for the same step cannot both win. The event row is written in the same
        transaction and broadcast once it commits; `deployment_transitioned` is sent then too.
        """
        old = self.state
        if not states.can_move(old, new):
            raise TransitionRefused(f"A deployment cannot go from {old} to {new}.")
        now = timezone.now()
        self.ending(new, fields, now)
        if new in states.OBSERVED:
            fields.setdefault("started_at", self.started_at or now)
        data = {
            "from": old,
            "to": new,
            "label": states.label(new, self.kind),
            "tone": states.tone(new, self.kind),
            "reason": fields.get("reason", ""),
            **(data or {}),
        }
        with transaction.atomic():
            events = self.append([Entry(kind, message, data, actor)], where={"state": old}, state=new, **fields)
            if events is None:
                raise TransitionRefused(f"Deployment #{self.pk} is no longer {old}.")
            tallies.deployment_moved(self, old, new)
            transaction.on_commit(lambda: deployment_transitioned.send(Deployment, deployment=self, old=old, new=new))
        return events[0]

    def broadcast(self, events) -> None:
        super().broadcast(events)
        if any(event.kind not in live.QUIET_KINDS for event in events):
            live.activity(self.activity_summary())

    def activity_summary(self) -> dict:
        """What the dashboard and other live pages need to redraw this deployment's cell."""
        return {
            "kind": "deployment",
            "deployment": self.pk,
            "deployment_kind": self.kind,
            "service": self.service.slug,
            "environment": self.environment.slug,
            "version": self.release.version,
            "state": self.state,
            "state_label": self.state_label,
            "tone": self.tone,
            "progress": {k: (self.progress or {}).get(k, 0) for k in live.SUMMARY_COUNTS},
            "url": self.get_absolute_url(),
        }

    @classmethod
    def update_report(cls, pk: int, system: str, change, *, announce: bool = True) -> None:
        """Set `reports[system]` of deployment `pk` to `change(current report)`, leaving the other
        systems' reports alone. `announce=False` for bookkeeping the reports panel does not show:
        open pages are not told to re-read it.

        The row lock keeps jobs of different systems (GitHub, Grafana, Slack), and two jobs of one
        system, from overwriting each other's entries in the one JSON column.
        """
        with transaction.atomic():
            rows = list(cls.objects.select_for_update().filter(pk=pk).values_list("reports", flat=True))
            if not rows:
                return
            reports = dict(rows[0] or {})
            reports[system] = {
                **change(dict(reports.get(system) or {})),
                "at": timezone.now().isoformat(timespec="seconds"),
            }
            cls.objects.filter(pk=pk).update(reports=reports)
            if announce:  # reports often land after the deployment's last event: an open page re-reads its panel
                live.activity({"kind": "report", "deployment": pk, "system": system})


class Approval(CountedOnCreate):
    APPROVE = "approve"
    REJECT = "reject"
    DECISIONS = [(APPROVE, "Approve"), (REJECT, "Reject")]
    count_created = tallies.approval_created

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approvals")
    decision = models.CharField(max_length=10, choices=DECISIONS)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["deployment", "user"], name="one_decision_per_person")]

    def __str__(self):
        return f"{self.user} {self.decision}s #{self.deployment_id}"


class DeploymentEvent(TimelineEvent):
    """A deployment's timeline row; the live stream and the audit trail are these same rows."""

    parent_field = "deployment"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["deployment", "seq"]
        constraints = [models.UniqueConstraint(fields=["deployment", "seq"], name="one_event_per_seq")]

    @classmethod
    def for_entry(cls, parent, seq, entry):
        event = super().for_entry(parent, seq, entry)
        event.actor = entry.actor
        return event

    def as_message(self) -> dict:
        return {**super().as_message(), "actor": self.actor.username if self.actor_id and self.actor else None}


class Build(CountedOnCreate, Timeline):
    """A Jenkins build of a service: started from the portal, a webhook, or seen via a hook."""

    TRIGGERS = [("portal", "Portal"), ("github", "GitHub"), ("jenkins", "Jenkins")]
    active_states = states.BUILD_ACTIVE
    final_states = states.BUILD_FINAL
    count_created = tallies.build_finished

    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="builds")
    job_name = models.CharField(max_length=200)
    asked_at, queue_id, number, url = jenkins_run_fields(
        "When Jenkins was asked to build: a re-run looks for the build first."
    )
    state = models.CharField(max_length=10, choices=list(states.BUILD_LABELS.items()), default=states.BUILD_QUEUED)
    result = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=10, choices=TRIGGERS, default="portal")
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    git_sha = models.CharField(max_length=40, blank=True)
    version = models.CharField(max_length=100, blank=True)
    test_summary = models.JSONField(default=dict, blank=True)
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds")
    log_offset = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_name", "number"], condition=Q(number__isnull=False), name="one_build_per_number"
            )
        ]
        indexes = [models.Index(fields=["service", "-id"], name="build_service_recent")]

    def __str__(self):
        return f"{self.job_name} #{self.number or '?'}"

    @property
    def state_label(self) -> str:
        return states.BUILD_LABELS[self.state]

    @property
    def tone(self) -> str:
        return states.BUILD_TONES[self.state]

    def broadcast(self, events) -> None:
        super().broadcast(events)
        if not any(event.kind not in live.QUIET_KINDS for event in events):
            return
        if self.service_id:
            # The service page lists its builds: tell it this one moved (not every log line).
            summary = {"kind": "build", "build": self.pk, "service": self.service.slug, "state": self.state}
            live.activity(summary)
        else:
            fragments.touch(fragments.BUILD)  # no page lists it, but /metrics counts it

    def move(self, new: str, message: str, *, data: dict | None = None, **fields) -> bool:
        """Compare-and-swap the build from an active state to `new`, with a "state" event."""
        self.ending(new, fields)
        payload = {
            "state": new,
            "label": states.BUILD_LABELS[new],
            "tone": states.BUILD_TONES[new],
            "reason": fields.get("reason", ""),
            **(data or {}),
        }
        where = {"state__in": sorted(states.BUILD_ACTIVE)}
        with transaction.atomic():
            if self.append([Entry("state", message, payload)], where=where, state=new, **fields) is None:
                return False
            if new in states.BUILD_FINAL:
                self.started_at = Build.objects.values_list("started_at", flat=True).get(pk=self.pk)
                tallies.build_finished(self)
        return True


class BuildEvent(TimelineEvent):
    """A build's timeline row: queue, start, console lines, result."""

    parent_field = "build"

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="events")

    class Meta:
        ordering = ["build", "seq"]
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="one_build_event_per_seq")]


class Commit(models.Model):
    """A commit on a service's default branch, recorded from GitHub push webhooks."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=40)
    message = models.TextField()
    author = models.CharField(max_length=200, blank=True)
    url = models.URLField(blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    pushed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pushed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["service", "sha"], name="one_commit_per_sha")]

    def __str__(self):
        return f"{self.service_id} {self.sha[:8]}"


class WebhookDelivery(models.Model):
    """A webhook delivery already handled, so a redelivery changes nothing (idempotency)."""

    source = models.CharField(max_length=20)
    delivery_id = models.CharField(max_length=200)
    event = models.CharField(max_length=60, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The table predates the model's move from `portal` (the site) to `releases`.
        db_table = "portal_webhookdelivery"
        constraints = [models.UniqueConstraint(fields=["source", "delivery_id"], name="one_delivery_per_id")]

    def __str__(self):
        return f"{self.source}:{self.delivery_id}"


class SlackAccount(models.Model):
    """A Slack workspace member who is this portal user: their Approve and Reject buttons count
    as the user's decisions, under the same rules as the browser. Linked by an admin, or found
    once through a verified e-mail address shared by both (see releases.slack_approvals)."""

    ADMIN, EMAIL = "admin", "email"
    LINKED_VIA = [(ADMIN, "Linked by an admin"), (EMAIL, "Same verified e-mail in Slack")]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_account")
    slack_user_id = models.CharField("Slack user id", max_length=32, unique=True, help_text="U… or W…")
    team_id = models.CharField("Slack team id", max_length=32, blank=True)
    linked_via = models.CharField(max_length=10, choices=LINKED_VIA, default=ADMIN)
    linked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__username"]

    def __str__(self):
        return f"{self.user} = Slack {self.slack_user_id}"


class Verification(models.Model):
    """How rollouts to one environment are verified after they complete (see releases/verdicts.py)."""

    WAIT, PASS, FAIL = "wait", "pass", "fail"
    UNREACHABLE = [
        (WAIT, "Wait for Prometheus (fail after the progress deadline)"),
        (PASS, "Pass the check, saying so in the timeline"),
        (FAIL, "Fail the deployment"),
    ]
    DEFAULT_BAKE_SECONDS = 60

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="verification")
    bake_seconds = models.PositiveIntegerField(
        default=DEFAULT_BAKE_SECONDS,
        validators=[MaxValueValidator(24 * 3600)],
        help_text="How long checks and the probe go on after the rollout completed, before it succeeds.",
    )
    when_unreachable = models.CharField(
        "when Prometheus cannot be reached", max_length=10, choices=UNREACHABLE, default=WAIT
    )

    class Meta:
        verbose_name = "verification setting"

    def __str__(self):
        return f"{self.environment}: bake {self.bake_seconds} s, unreachable → {self.when_unreachable}"

    @classmethod
    def of(cls, environment) -> "Verification":
        """The environment's settings, or the defaults when it has none."""
        return cls.objects.filter(environment=environment).first() or cls(environment=environment)


class CheckQuerySet(models.QuerySet):
    def for_rollout(self, service_id, environment_id):
        """The enabled checks a rollout of the service to the environment is held to (either may
        be an OuterRef)."""
        return self.filter(service_id=service_id, enabled=True).filter(
            Q(environment__isnull=True) | Q(environment_id=environment_id)
        )


class Check(models.Model):
    """A PromQL query whose value must stay on the right side of a threshold while a rollout runs
    and bakes. In the query, `$window` is the window (e.g. `rate(x[$window])`) and `$namespace`
    the Kubernetes namespace of the environment being deployed to."""

    COMPARISONS = [("<", "below"), ("<=", "at most"), (">", "above"), (">=", "at least")]
    PASSES = {
        "<": lambda v, t: v < t,
        "<=": lambda v, t: v <= t,
        ">": lambda v, t: v > t,
        ">=": lambda v, t: v >= t,
    }

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="checks")
    environment = models.ForeignKey(
        Environment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only rollouts to this environment; empty: every environment.",
    )
    name = models.CharField(max_length=100, help_text="For people, e.g. “5xx ratio”.")
    query = models.TextField(
        help_text="PromQL returning a scalar or a single series; $window is the window, $namespace the "
        "environment's namespace."
    )
    comparison = models.CharField(max_length=2, choices=COMPARISONS, default="<")
    threshold = models.FloatField()
    window = models.CharField(max_length=20, default="1m", help_text="A PromQL duration such as 30s or 5m.")
    enabled = models.BooleanField(default=True)

    objects = CheckQuerySet.as_manager()

    class Meta:
        ordering = ["service", "name", "id"]

    def __str__(self):
        return f"{self.service.slug}: {self.name}"

    def promql(self, namespace: str) -> str:
        """The query as evaluated for a rollout in `namespace`."""
        return self.query.replace("$window", self.window).replace("$namespace", namespace)

    def passes(self, value: float) -> bool:
        return self.PASSES[self.comparison](value, self.threshold)

    @property
    def rule(self) -> str:
        """The condition in words, e.g. "below 0.01"."""
        return f"{dict(self.COMPARISONS)[self.comparison]} {self.threshold:g}"


class CheckSample(models.Model):
    """One evaluation of a check during a deployment (the page charts them)."""

    PASS, FAIL, NO_DATA, UNREACHABLE = "pass", "fail", "no_data", "unreachable"
    OUTCOMES = [(PASS, "Pass"), (FAIL, "Fail"), (NO_DATA, "No data"), (UNREACHABLE, "Unreachable")]

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="check_samples")
    check_rule = models.ForeignKey(Check, null=True, on_delete=models.SET_NULL, related_name="samples")
    name = models.CharField(max_length=100)
    at = models.DateTimeField(default=timezone.now)
    value = models.FloatField(null=True)
    threshold = models.FloatField()
    outcome = models.CharField(max_length=12, choices=OUTCOMES)

    class Meta:
        ordering = ["deployment", "at", "id"]
        indexes = [models.Index(fields=["deployment", "at"], name="checksample_deployment_at")]

    def __str__(self):
        return f"#{self.deployment_id} {self.name} {self.value} {self.outcome}"
