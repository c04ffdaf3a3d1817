"""Indexes for a contractor's lead list in the API (GET /api/v1/leads/): its default order (newest first)
and ordering=-score read the first page straight from an index instead of sorting every lead the
contractor holds (12,000 leads: 40 ms, a sort spilling to disk, to under 1 ms; bench/api.py).

Raw SQL so the model state is untouched; moving them into Lead.Meta.indexes (with
SeparateDatabaseAndState) is left to the next change of the model."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_lead_filters_per_trade")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX lead_contractor_created ON leads_lead (contractor_id, created_at DESC, id DESC)",
            "DROP INDEX lead_contractor_created",
        ),
        migrations.RunSQL(
            "CREATE INDEX lead_contractor_score ON leads_lead (contractor_id, score DESC, id DESC)",
            "DROP INDEX lead_contractor_score",
        ),
    ]
