"""The release admin permission; per-environment Slack webhook URLs move to an encrypted column.

Existing URLs are encrypted in place with the key of the running settings (CREDENTIALS_KEY or
SECRET_KEY), then the plaintext column is dropped. Going back decrypts them again.
"""

from django.db import migrations, models

from plumbing import crypto


def encrypt_existing(apps, schema_editor):
    Environment = apps.get_model("clusters", "Environment")
    for environment in Environment.objects.exclude(slack_webhook_url=""):
        environment.slack_webhook_encrypted = crypto.encrypt(environment.slack_webhook_url)
        environment.save(update_fields=["slack_webhook_encrypted"])


def decrypt_existing(apps, schema_editor):
    Environment = apps.get_model("clusters", "Environment")
    for environment in Environment.objects.exclude(slack_webhook_encrypted=""):
        environment.slack_webhook_url = crypto.decrypt(environment.slack_webhook_encrypted)
        environment.save(update_fields=["slack_webhook_url"])


class Migration(migrations.Migration):
    dependencies = [("clusters", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="environment",
            options={
                "ordering": ["position", "slug"],
                "permissions": [
                    (
                        "release_admin",
                        "Release admin: deploy, roll back, build and override freezes and locks in every environment",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="environment",
            name="slack_webhook_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.RemoveField(model_name="environment", name="slack_webhook_url"),
    ]
