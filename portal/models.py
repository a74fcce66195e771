from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """Links a person at the identity provider (issuer + subject) to a portal user.

    Accounts are matched by this link only, never by e-mail or username: a provider account
    that happens to share an e-mail with a local admin must not become that admin.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.URLField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_sso_subject")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"
