from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_lead_filters_per_trade")]

    operations = [
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["contractor", "-created_at", "-id"], name="lead_contractor_created"),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["contractor", "-score", "-id"], name="lead_contractor_score"),
        ),
    ]
