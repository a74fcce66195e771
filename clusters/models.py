from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from plumbing import crypto

dns_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "Use lower-case letters, digits and '-' (a Kubernetes name).",
)


class Cluster(models.Model):
    """A Kubernetes API server the portal talks to, with its credentials encrypted at rest."""

    name = models.SlugField(unique=True)
    api_url = models.URLField("API URL", blank=True, help_text="Empty when in-cluster.")
    in_cluster = models.BooleanField(
        default=False, help_text="Use the portal's own service account (running inside it)."
    )
    ca_cert = models.TextField("CA certificate (PEM)", blank=True)
    insecure_skip_tls_verify = models.BooleanField(default=False)
    token_encrypted = models.TextField(blank=True, editable=False)
    token = crypto.encrypted_property("token_encrypted")

    def __str__(self):
        return self.name

    @property
    def has_token(self) -> bool:
        return bool(self.token_encrypted)


class EnvironmentQuerySet(models.QuerySet):
    def in_use(self):
        """Environments that are not archived: the dashboard and the deploy buttons show these."""
        return self.filter(archived_at__isnull=True)


class Environment(models.Model):
    """A stage on the promotion path (dev → staging → prod) in one cluster namespace."""

    DIRECT = "direct"
    JENKINS = "jenkins"
    DEPLOY_VIA = [(DIRECT, "Patch the Deployment directly"), (JENKINS, "Run a Jenkins deploy job")]
    CANCEL_PAUSE = "pause"
    CANCEL_UNDO = "undo"
    CANCEL_ACTIONS = [
        (CANCEL_UNDO, "Undo: restore the previous revision"),
        (CANCEL_PAUSE, "Pause the rollout where it is"),
    ]

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0, help_text="Order on the promotion path.")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="environments")
    namespace = models.CharField(max_length=63, validators=[dns_label])
    required_approvals = models.PositiveIntegerField(default=0)
    approver_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    deployer_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    allow_self_approval = models.BooleanField(default=False)
    requires_previous = models.BooleanField(
        "requires the previous environment",
        default=True,
        help_text="A release must have succeeded in the previous environment first.",
    )
    requires_passing_tests = models.BooleanField(
        default=False,
        help_text="A release can be requested here only when its build's tests passed (none failed).",
    )
    deploy_via = models.CharField(max_length=10, choices=DEPLOY_VIA, default=DIRECT)
    jenkins_deploy_job = models.CharField(max_length=200, blank=True)
    progress_deadline_seconds = models.PositiveIntegerField(default=600, validators=[MinValueValidator(10)])
    auto_rollback = models.BooleanField(default=False)
    cancel_action = models.CharField(max_length=10, choices=CANCEL_ACTIONS, default=CANCEL_UNDO)
    is_production = models.BooleanField(default=False)
    grafana_variables = models.JSONField(default=dict, blank=True)
    # A Slack incoming-webhook URL is a credential (anyone holding it can post to the channel):
    # encrypted at rest like cluster tokens, write-only in the admin, kept out of the audit log.
    slack_webhook_encrypted = models.TextField(blank=True, editable=False)
    slack_webhook_url = crypto.encrypted_property(
        "slack_webhook_encrypted", "This environment's Slack webhook; empty means the global SLACK_WEBHOOK_URL."
    )
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Archived: hidden from the dashboard and closed to deployments; its history stays.",
    )

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "slug"]
        permissions = [
            (
                "release_admin",
                "Release admin: deploy, roll back, build and override freezes and locks in every environment",
            )
        ]

    def __str__(self):
        return self.name

    @property
    def has_slack_webhook(self) -> bool:
        return bool(self.slack_webhook_encrypted)

    def previous(self) -> "Environment | None":
        return Environment.objects.filter(position__lt=self.position).order_by("-position").first()

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def active_locks(self, service_slug: str | None = None, now=None):
        locks = self.locks.in_force(now)
        if service_slug is None:
            return locks
        return locks.filter(Q(service_slug="") | Q(service_slug=service_slug))


class FreezeQuerySet(models.QuerySet):
    def in_force(self, now=None):
        now = now or timezone.now()
        return self.filter(starts_at__lte=now, ends_at__gt=now)

    def not_over(self, now=None):
        """In force now or still to come: what the freezes page lists."""
        return self.filter(ends_at__gt=now or timezone.now())


class FreezeWindow(models.Model):
    """A scheduled period in which nothing deploys (a group-buy event, a holiday)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = FreezeQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at"]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="freeze_ends_after_start")]

    def __str__(self):
        return f"{self.environment} frozen {self.starts_at:%Y-%m-%d %H:%M} → {self.ends_at:%H:%M}"


class LockQuerySet(models.QuerySet):
    def in_force(self, now=None):
        """Locks that stop deployments now: not released, and not past their `until`."""
        now = now or timezone.now()
        return self.filter(released_at__isnull=True).filter(Q(until__isnull=True) | Q(until__gt=now))


class Lock(models.Model):
    """An ad-hoc stop on an environment (or one service in it), until released or until `until`."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="locks")
    service_slug = models.SlugField("service", blank=True, help_text="Empty locks every service.")
    reason = models.CharField(max_length=200)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(
        null=True, blank=True, help_text="The lock lifts by itself then. Empty: until released."
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = LockQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(until__isnull=True) | Q(until__gt=F("created_at")),
                name="lock_until_after_start",
            )
        ]

    def __str__(self):
        scope = self.service_slug or "all services"
        return f"{self.environment} locked ({scope}): {self.reason}"

    def in_force(self, now=None) -> bool:
        now = now or timezone.now()
        return self.released_at is None and (self.until is None or self.until > now)


class Workload(models.Model):
    """What the cluster really runs for one Deployment in an environment, as the watcher saw it."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="workloads")
    name = models.CharField(max_length=253)
    image = models.CharField(max_length=500, blank=True)
    replicas = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    ready = models.IntegerField(default=0)
    available = models.IntegerField(default=0)
    generation = models.BigIntegerField(default=0)
    observed_generation = models.BigIntegerField(default=0)
    revision = models.CharField(max_length=20, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    pods = models.JSONField(default=list, blank=True)
    expected_image = models.CharField(
        max_length=500, blank=True, help_text="Image of the last successful portal deployment."
    )
    exists = models.BooleanField(default=True)
    observed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="one_workload_per_name")]

    def __str__(self):
        return f"{self.environment.slug}/{self.name}"

    @property
    def drifted(self) -> bool:
        return bool(self.expected_image) and self.image != self.expected_image


class WatcherHeartbeat(models.Model):
    """One row per watcher process; /readyz checks the newest beat."""

    name = models.CharField(max_length=100, unique=True)
    beat_at = models.DateTimeField()
    streams = models.PositiveIntegerField(default=0)
    reconnects = models.PositiveIntegerField(default=0)
    lag_seconds = models.FloatField(default=0)

    def __str__(self):
        return f"{self.name} at {self.beat_at:%H:%M:%S}"
