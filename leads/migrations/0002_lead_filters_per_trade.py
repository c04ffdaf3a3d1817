from django.db import migrations


def lead_filters_create(apps, schema_editor):
    """Every trade starts with the default filters (see LeadFilter); staff tune them in the admin."""
    Trade, LeadFilter = apps.get_model("scoring", "Trade"), apps.get_model("leads", "LeadFilter")
    for trade in Trade.objects.filter(lead_filter__isnull=True):
        LeadFilter.objects.create(trade=trade)


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_leads"), ("scoring", "0010_property_owner_name")]

    operations = [migrations.RunPython(lead_filters_create, migrations.RunPython.noop)]
