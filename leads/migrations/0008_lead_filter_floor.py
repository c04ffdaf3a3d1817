"""The minimum score becomes a floor under the volume target: 40 instead of 80.

With the volume target (capacity_factor) deciding how many leads a trade makes, 80 as the bar kept
roofing at no leads on a market without fresh hail. Filters still at the old default of 80 get the new
floor; a filter staff set to anything else is left alone.
"""

from django.db import migrations, models


def lower_default_floor(apps, schema_editor):
    LeadFilter = apps.get_model("leads", "LeadFilter")
    LeadFilter.objects.filter(min_score=80).update(min_score=40)


def raise_default_floor(apps, schema_editor):
    LeadFilter = apps.get_model("leads", "LeadFilter")
    LeadFilter.objects.filter(min_score=40).update(min_score=80)


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0007_lead_quality"),
    ]

    operations = [
        migrations.AlterField(
            model_name="leadfilter",
            name="min_score",
            field=models.FloatField(default=40, help_text="Lowest score (0-100) that makes a lead."),
        ),
        migrations.RunPython(lower_default_floor, raise_default_floor),
    ]
