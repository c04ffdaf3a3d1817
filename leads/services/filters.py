"""Each trade's lead quality filters."""

from __future__ import annotations

from leads.models import LeadFilter
from scoring.models import Trade


def lead_filter_for(*, trade: Trade) -> LeadFilter:
    """The trade's filters; a trade staff just added gets the defaults (score 80 and up, 25 new leads
    per ZIP a day, 90-day cooldown), which they can then edit in the admin."""
    lead_filter, _ = LeadFilter.objects.get_or_create(trade=trade)
    return lead_filter
