"""What a lead costs, in one place: the price list of its trade in force when it is assigned, the band of
that list its score falls in (an urgent lead takes the list's urgent bands when it has any), nothing for
an exploration lead when the list says so. No list in force: the lead is unpriced (NULL), and charges
nothing. Routing prices a whole set at once, lead_assign one lead; both through these fragments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import connection

from leads.models import Lead, Price, PriceList

# The list in force per trade at %(now)s, as a WITH item named in_force.
IN_FORCE_SQL = f"""
    in_force AS (
        SELECT DISTINCT ON (trade_id) id, trade_id, exploration_free FROM {PriceList._meta.db_table}
        WHERE effective_from <= %(now)s ORDER BY trade_id, effective_from DESC
    )"""


def price_sql(lead: str) -> str:
    """The price of the lead row aliased `lead` (trade_id, score, urgent, exploration) by in_force."""
    return f"""(
        SELECT CASE WHEN f.exploration_free AND {lead}.exploration THEN 0 ELSE (
            SELECT p.amount FROM {Price._meta.db_table} p
            WHERE p.price_list_id = f.id AND p.min_score <= {lead}.score AND (NOT p.urgent OR {lead}.urgent)
            ORDER BY p.urgent DESC, p.min_score DESC LIMIT 1) END
        FROM in_force f WHERE f.trade_id = {lead}.trade_id)"""


def lead_price(*, lead_id: int, now: dt.datetime) -> Decimal | None:
    """The price `lead_id` would be assigned at, `now`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {IN_FORCE_SQL} SELECT {price_sql('l')} FROM {Lead._meta.db_table} l WHERE l.id = %(lead)s",
            {"now": now, "lead": lead_id},
        )
        row = cursor.fetchone()
    return None if row is None else row[0]
