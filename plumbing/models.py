"""The bottom layer's one table: the freshness tokens of rendered page fragments (`fragments`)."""

from django.db import models


class Freshness(models.Model):
    """The current token of one scope of data ("deployments", "catalog", …): replaced after every
    committed change to it, so a fragment cached under the old token is never served again."""

    scope = models.CharField(max_length=60, primary_key=True)
    token = models.CharField(max_length=32)

    class Meta:
        app_label = "plumbing"
        verbose_name_plural = "freshness tokens"

    def __str__(self):
        return f"{self.scope}: {self.token}"
