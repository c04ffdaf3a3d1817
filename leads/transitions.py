"""The lead lifecycle's transition table: for each action, the states a lead may be in for it, the state it
takes the lead to, and who (system, staff, contractor) may make it. The lifecycle services ask
`transition_check` before they move a lead, and their set-based moves (leads_deliver, leads_expire) select
on `from_states`. Two bulk moves are written in SQL of their own, within what the table allows: routing's
assignment by the system, generated -> assigned (leads/services/routing.py), and the do-not-contact list's
withdrawal by the system, generated -> withdrawn (leads/services/suppressions.py).

    action          from                              to                   who
    assign          generated                         assigned             system, staff
    reassign        assigned, delivered               assigned             staff
    deliver         assigned                          delivered            system, staff
    accept          delivered                         accepted             contractor, staff
    reject          delivered                         rejected             contractor, staff
    contact         accepted                          accepted (a note)    contractor, staff
    convert         accepted                          converted            contractor, staff
    return          delivered, accepted               returned             contractor, staff
    return_request  delivered, accepted               unchanged (waits)    contractor
    return_approve  delivered, accepted               returned             staff
    return_deny     delivered, accepted               unchanged            staff
    expire          generated, assigned, delivered    expired              system
    withdraw        generated                         withdrawn            system, staff
                    assigned, delivered, accepted     withdrawn            staff

The other conditions of a move are the services' (leads/services/lifecycle.py), not the table's: the
return window, the monthly return rate and whether a return is waiting (lead_return, lead_return_approve,
lead_return_deny), exclusivity, caps and the contractor's status (lead_assign), and the reasons and notes
that staff must give.
"""

from __future__ import annotations

from dataclasses import dataclass

from leads.errors import TransitionRefused
from leads.models import Lead, LeadEvent

State, Actor = Lead.State, LeadEvent.Actor
SYSTEM, STAFF, CONTRACTOR = Actor.SYSTEM, Actor.STAFF, Actor.CONTRACTOR


@dataclass(frozen=True)
class Move:
    to_state: str
    actors: frozenset[str]


def _moves(from_states, to_state, *actors) -> dict[str, Move]:
    return {state: Move(to_state, frozenset(actors)) for state in from_states}


# action -> {from state: the state it leads to, and who may make it}. A `to_state` equal to the
# from state records a request or decision that changes no state (a return waiting for approval).
TRANSITIONS: dict[str, dict[str, Move]] = {
    "assign": _moves([State.GENERATED], State.ASSIGNED, SYSTEM, STAFF),
    "reassign": _moves([State.ASSIGNED, State.DELIVERED], State.ASSIGNED, STAFF),
    "deliver": _moves([State.ASSIGNED], State.DELIVERED, SYSTEM, STAFF),
    "accept": _moves([State.DELIVERED], State.ACCEPTED, CONTRACTOR, STAFF),
    "reject": _moves([State.DELIVERED], State.REJECTED, CONTRACTOR, STAFF),
    "contact": _moves([State.ACCEPTED], State.ACCEPTED, CONTRACTOR, STAFF),
    "convert": _moves([State.ACCEPTED], State.CONVERTED, CONTRACTOR, STAFF),
    "return": _moves([State.DELIVERED, State.ACCEPTED], State.RETURNED, CONTRACTOR, STAFF),
    "return_request": {
        State.DELIVERED: Move(State.DELIVERED, frozenset([CONTRACTOR])),
        State.ACCEPTED: Move(State.ACCEPTED, frozenset([CONTRACTOR])),
    },
    "return_approve": _moves([State.DELIVERED, State.ACCEPTED], State.RETURNED, STAFF),
    "return_deny": {
        State.DELIVERED: Move(State.DELIVERED, frozenset([STAFF])),
        State.ACCEPTED: Move(State.ACCEPTED, frozenset([STAFF])),
    },
    "expire": _moves([State.GENERATED, State.ASSIGNED, State.DELIVERED], State.EXPIRED, SYSTEM),
    "withdraw": {
        State.GENERATED: Move(State.WITHDRAWN, frozenset([SYSTEM, STAFF])),
        **_moves([State.ASSIGNED, State.DELIVERED, State.ACCEPTED], State.WITHDRAWN, STAFF),
    },
}

VERBS = {
    "assign": "assigned",
    "reassign": "reassigned",
    "deliver": "delivered",
    "accept": "accepted",
    "reject": "rejected",
    "contact": "marked contacted",
    "convert": "converted",
    "return": "returned",
    "return_request": "returned",
    "return_approve": "returned",
    "return_deny": "refused a return",
    "expire": "expired",
    "withdraw": "withdrawn",
}


def from_states(action: str) -> list[str]:
    """The states `action` may start from: what set-based services filter on."""
    return list(TRANSITIONS[action])


def staff_may(lead: Lead, action: str) -> bool:
    """Whether the table lets staff make `action` from `lead`'s state: what the lead's page offers."""
    move = TRANSITIONS[action].get(lead.state)
    return move is not None and STAFF in move.actors


def transition_check(*, lead: Lead, action: str, actor: str) -> str:
    """The state `action` by `actor` takes `lead` to; TransitionRefused naming the current state when the
    table does not allow it."""
    moves = TRANSITIONS.get(action)
    if moves is None:
        raise TransitionRefused(f"Unknown lead action {action!r}.")
    move = moves.get(lead.state)
    if move is None:
        allowed = ", ".join(Lead.State(state).label.lower() for state in moves)
        raise TransitionRefused(
            f"Lead {lead.pk} is {lead.get_state_display().lower()}; it cannot be {VERBS[action]} "
            f"(only a lead that is {allowed})."
        )
    if actor not in move.actors:
        who = ", ".join(sorted(Actor(a).label.lower() for a in move.actors))
        raise TransitionRefused(
            f"Lead {lead.pk} cannot be {VERBS[action]} by {Actor(actor).label.lower()}; only by {who}."
        )
    return move.to_state
