"""WebhookDelivery now lives in `releases` (releases/migrations/0004); the table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_integrations"),
        ("releases", "0004_webhookdelivery"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="WebhookDelivery")]),
    ]
