"""Each trade's lead quality filters."""

from __future__ import annotations

from leads.models import LeadFilter
from scoring.models import Trade


def lead_filter_for(*, trade: Trade) -> LeadFilter:
    """The trade's filters; a trade staff just added gets the defaults, which they can then edit in the
    admin: a volume target of the owners' room x 1.5 and 50 a day for the pool, best first, from score 40
    up (a floor, low enough that a trade whose scores need recent storms to reach 80 still makes leads:
    the target, not the floor, sets the volume), at most 25 new leads per ZIP a day, a 90-day cooldown,
    no exploration."""
    lead_filter, _ = LeadFilter.objects.get_or_create(trade=trade)
    return lead_filter
