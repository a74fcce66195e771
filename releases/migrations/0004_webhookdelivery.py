"""WebhookDelivery moves from `portal` (the site, top layer) to `releases`, which uses it.

State only: the table `portal_webhookdelivery` stays as it is, with its rows.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_integrations"),
        ("releases", "0003_scale_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WebhookDelivery",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("source", models.CharField(max_length=20)),
                        ("delivery_id", models.CharField(max_length=200)),
                        ("event", models.CharField(blank=True, max_length=60)),
                        ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        "db_table": "portal_webhookdelivery",
                        "constraints": [
                            models.UniqueConstraint(fields=("source", "delivery_id"), name="one_delivery_per_id")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
