from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from clusters.models import Environment
from plumbing import live
from releases import states


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

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("service", args=[self.slug])


class Release(models.Model):
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
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


# Sent after a transition commits: deployment, old, new. Notifications, GitHub statuses and
# Grafana annotations listen (see releases.apps), each queueing its own job.
deployment_transitioned = Signal()


class TransitionRefused(Exception):
    """The deployment was not in the state the caller expected (someone else moved it)."""


class DeploymentQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state__in=states.ACTIVE)

    def for_history(self):
        return self.select_related("service", "environment", "release", "requested_by")


class Deployment(models.Model):
    """A release going to an environment, or a rollback; its timeline is DeploymentEvent rows."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    KINDS = [(DEPLOY, "Deploy"), (ROLLBACK, "Rollback")]

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    # An environment owns its history: with deployments it can be archived, never deleted.
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    previous_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=KINDS, default=DEPLOY)
    state = models.CharField(max_length=20, choices=states.CHOICES, default=states.PENDING_APPROVAL)
    reason = models.TextField(blank=True)
    override_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    required_approvals = models.PositiveIntegerField(default=0)
    jenkins_queue_id = models.BigIntegerField(null=True, blank=True)
    jenkins_build_number = models.BigIntegerField(null=True, blank=True)
    jenkins_build_url = models.URLField(blank=True)
    jenkins_log_offset = models.BigIntegerField(default=0)
    revision_before = models.CharField(max_length=20, blank=True)
    revision_after = models.CharField(max_length=20, blank=True)
    generation = models.BigIntegerField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    min_available = models.IntegerField(null=True, blank=True)
    downtime = models.JSONField(default=dict, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    github_deployment_id = models.BigIntegerField(null=True, blank=True)
    grafana_annotation_id = models.BigIntegerField(null=True, blank=True)
    # Outside systems told about this deployment: {"github": {"state", "error", "at"}, ...}.
    reports = models.JSONField(default=dict, blank=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
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
        ]

    def __str__(self):
        return f"#{self.pk} {self.service.slug} {self.release.version} → {self.environment.slug}"

    def get_absolute_url(self):
        return reverse("deployment", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in states.ACTIVE

    @property
    def state_label(self) -> str:
        return states.LABELS[self.state]

    @property
    def tone(self) -> str:
        return states.TONES[self.state]

    @property
    def group(self) -> str:
        return f"deployment-{self.pk}"

    def transition(self, new: str, *, kind: str, message: str, actor=None, data=None, **fields):
        """Move from the state this instance holds to `new`, or raise TransitionRefused.

        Compare-and-swap: the UPDATE only matches while the row is still in our state, so two
        workers racing for the same step cannot both win. The event row is written in the same
        transaction and broadcast once it commits.
        """
        old = self.state
        if not states.can_move(old, new):
            raise TransitionRefused(f"A deployment cannot go from {old} to {new}.")
        now = timezone.now()
        if new in states.FINAL:
            fields.setdefault("finished_at", now)
        if new in states.IN_CLUSTER or new == states.BUILDING:
            fields.setdefault("started_at", self.started_at or now)
        with transaction.atomic():
            moved = Deployment.objects.filter(pk=self.pk, state=old).update(
                state=new, last_seq=F("last_seq") + 1, **fields
            )
            if moved != 1:
                raise TransitionRefused(f"Deployment #{self.pk} is no longer {old}.")
            self.refresh_from_db()
            data = {
                "from": old,
                "to": new,
                "label": self.state_label,
                "tone": self.tone,
                "reason": fields.get("reason", ""),
                **(data or {}),
            }
            event = self._record(kind, message, actor, data, self.last_seq)
            transaction.on_commit(lambda: deployment_transitioned.send(Deployment, deployment=self, old=old, new=new))
        return event

    def log(self, kind: str, message: str, actor=None, data=None, **fields) -> "DeploymentEvent":
        """Append a timeline event that does not change the state (progress, log lines, notes)."""
        with transaction.atomic():
            Deployment.objects.filter(pk=self.pk).update(last_seq=F("last_seq") + 1, **fields)
            seq = Deployment.objects.values_list("last_seq", flat=True).get(pk=self.pk)
            for name, value in fields.items():
                setattr(self, name, value)
            self.last_seq = seq
            return self._record(kind, message, actor, data or {}, seq)

    @classmethod
    def update_report(cls, pk: int, system: str, change) -> None:
        """Set `reports[system]` of deployment `pk` to `change(current report)`, leaving the other
        systems' reports alone.

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

    def _record(self, kind, message, actor, data, seq) -> "DeploymentEvent":
        event = DeploymentEvent.objects.create(
            deployment=self, seq=seq, kind=kind, message=message, actor=actor, data=data
        )
        live.deployment_event(self, event)
        return event


class Approval(models.Model):
    APPROVE = "approve"
    REJECT = "reject"
    DECISIONS = [(APPROVE, "Approve"), (REJECT, "Reject")]

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


class DeploymentEvent(models.Model):
    """Append-only timeline row; the live stream and the audit trail are these same rows."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=40)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deployment", "seq"]
        constraints = [models.UniqueConstraint(fields=["deployment", "seq"], name="one_event_per_seq")]

    def __str__(self):
        return f"#{self.deployment_id}.{self.seq} {self.kind}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Deployment events are append-only.")
        super().save(*args, **kwargs)

    def as_message(self) -> dict:
        return {
            "type": "event",
            "deployment": self.deployment_id,
            "seq": self.seq,
            "kind": self.kind,
            "message": self.message,
            "data": self.data,
            "actor": self.actor.username if self.actor_id and self.actor else None,
            "at": self.created_at.isoformat(),
        }


class Build(models.Model):
    """A Jenkins build of a service: started from the portal, a webhook, or seen via a hook."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    STATES = [
        (QUEUED, "Queued"),
        (RUNNING, "Running"),
        (SUCCEEDED, "Succeeded"),
        (FAILED, "Failed"),
        (ABORTED, "Aborted"),
        (CANCELLED, "Cancelled"),
    ]
    FINAL = frozenset({SUCCEEDED, FAILED, ABORTED, CANCELLED})
    TRIGGERS = [("portal", "Portal"), ("github", "GitHub"), ("jenkins", "Jenkins")]

    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="builds")
    job_name = models.CharField(max_length=200)
    queue_id = models.BigIntegerField(null=True, blank=True)
    number = models.BigIntegerField(null=True, blank=True)
    url = models.URLField(blank=True)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED)
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
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

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


class BuildEvent(models.Model):
    """Append-only log of a build (queue, start, console lines, result), numbered per build."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=40)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["build", "seq"]
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="one_build_event_per_seq")]

    def __str__(self):
        return f"{self.build_id}.{self.seq} {self.kind}"


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
