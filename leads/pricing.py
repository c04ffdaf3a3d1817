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
    """The price of the lead row aliased `lead` (trade_id, score, urgent, exploration) by in_force. Its own
    aliases, price_list and band, are not to be the caller's."""
    return f"""(
        SELECT CASE WHEN price_list.exploration_free AND {lead}.exploration THEN 0 ELSE (
            SELECT band.amount FROM {Price._meta.db_table} band
            WHERE band.price_list_id = price_list.id AND band.min_score <= {lead}.score
              AND (NOT band.urgent OR {lead}.urgent)
            ORDER BY band.urgent DESC, band.min_score DESC LIMIT 1) END
        FROM in_force price_list WHERE price_list.trade_id = {lead}.trade_id)"""


def lead_price(*, lead_id: int, now: dt.datetime) -> Decimal | None:
    """The price `lead_id` would be assigned at, `now`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {IN_FORCE_SQL} SELECT {price_sql('l')} FROM {Lead._meta.db_table} l WHERE l.id = %(lead)s",
            {"now": now, "lead": lead_id},
        )
        row = cursor.fetchone()
    return None if row is None else row[0]
