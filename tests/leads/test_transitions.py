"""The transition table as its module's docstring shows it: the docstring's table is the table."""

import re

from leads import transitions
from leads.transitions import TRANSITIONS


def documented_moves() -> set[tuple[str, str, str, frozenset[str]]]:
    """(action, from state, to state, who) for each move the docstring's table lists."""
    lines = transitions.__doc__.split("    action ", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    moves, action = set(), None
    for line in lines:
        columns = re.split(r"\s{2,}", line.strip())
        if line.startswith("    ") and not line.startswith("     "):
            action, *columns = columns
        sources, to_state, who = columns
        for source in sources.split(", "):
            to = source if to_state.startswith(("unchanged", f"{source} (")) else to_state.split(" (")[0]
            moves.add((action, source, to, frozenset(who.split(", "))))
    return moves


def test_the_docstring_lists_exactly_the_moves_of_the_table():
    table = {
        (action, source, str(move.to_state), frozenset(str(actor) for actor in move.actors))
        for action, moves in TRANSITIONS.items()
        for source, move in moves.items()
    }
    assert documented_moves() == table
