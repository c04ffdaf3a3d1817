"""The import profiles that come with LeadEngine (NOAA Storm Events, SPC daily reports), as defined in
scoring.services.imports.profiles.SHIPPED_PROFILES; profiles of those names that already exist stay as
they are."""

from django.db import migrations, models

from scoring.services.imports.profiles import SHIPPED_PROFILES, import_profiles_shipped_install


def install(apps, schema_editor):
    import_profiles_shipped_install(model=apps.get_model("scoring", "ImportProfile"))


def uninstall(apps, schema_editor):
    apps.get_model("scoring", "ImportProfile").objects.filter(name__in=SHIPPED_PROFILES, shipped=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0014_import_rules"),
    ]

    operations = [
        migrations.AlterField(
            model_name="importprofile",
            name="options",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    'Conversions of values, all optional: "constants" {column: value on every row}, "multiply" '
                    '{column: factor}, "date_format" (strptime, e.g. "%d.%m.%Y"), "converter" (noaa-storm-events, '
                    'spc-reports) and its "event_types". See README, Importing data: profiles.'
                ),
            ),
        ),
        migrations.RunPython(install, uninstall),
    ]
