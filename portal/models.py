from django.db import models
from django.utils import timezone


class WebhookDelivery(models.Model):
    """A webhook delivery already handled, so a redelivery changes nothing (idempotency)."""

    source = models.CharField(max_length=20)
    delivery_id = models.CharField(max_length=200)
    event = models.CharField(max_length=60, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "delivery_id"], name="one_delivery_per_id")]

    def __str__(self):
        return f"{self.source}:{self.delivery_id}"
