"""The trades LeadEngine starts with. Staff add more in the admin; this never overwrites their edits."""

from django.db import migrations

TRADES = [
    # slug, name, permit keywords: whole words of a permit's type; a trailing * matches any word start
    ("roofing", "Roofing", ["roof", "roofs", "roofing", "reroof*", "re-roof*", "shingle*"]),
    ("solar", "Solar", ["solar", "photovoltaic", "pv"]),
    ("hvac", "HVAC", ["hvac", "furnace*", "air condition*", "a/c", "heat pump*", "mechanical", "boiler*"]),
    ("windows", "Windows", ["window*", "glazing", "fenestration"]),
]


def seed(apps, schema_editor):
    Trade = apps.get_model("scoring", "Trade")
    for slug, name, keywords in TRADES:
        Trade.objects.get_or_create(slug=slug, defaults={"name": name, "permit_keywords": keywords})


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
