"""How leads are ranked, in one place: which properties become leads first when a limit bites (per ZIP
per day, or --limit), and which pool leads a contractor with little cap room left gets first.

    priority = 0.75 x score + 0.25 x urgency

Score (how well the home fits the trade) leads; urgency (how much of that comes from recent events
such as a hailstorm) lifts the homes to visit now above equally good ones that can wait. Ties go to
the higher score, then to the lower property id, so the same data always gives the same order.
"""

SCORE_WEIGHT = 0.75
URGENCY_WEIGHT = 0.25


def priority(score: float, urgency: float) -> float:
    return SCORE_WEIGHT * score + URGENCY_WEIGHT * urgency


def priority_sql(score: str, urgency: str) -> str:
    """`priority` over two SQL column expressions."""
    return f"({SCORE_WEIGHT} * {score} + {URGENCY_WEIGHT} * {urgency})"


def order_sql(alias: str) -> str:
    """ORDER BY terms for rows (alias) carrying priority, score and property_id columns: best first."""
    return f"{alias}.priority DESC, {alias}.score DESC, {alias}.property_id"


def routing_order_sql(alias: str) -> str:
    """ORDER BY terms for pool leads (alias) going to an owner: exploration leads first, then best first.

    Exploration leads are drawn from below the day's cut to learn how such homes turn out, which is known
    only once a contractor has had them. Owned ZIPs get more leads than their owners' room (the capacity
    factor), so ranked by priority they would be the ones left waiting until they expire, and the draw
    would teach nothing. They take their small share of the room instead: that is what exploration costs.
    """
    return f"{alias}.exploration DESC, {order_sql(alias)}"
