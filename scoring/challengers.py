"""Which version scores a property while its trade runs a challenger: a stable hash of the property id.

A property is in the challenger's share when hash(id) / 2**32 < share, with a multiplicative hash
(Knuth's 2654435761) that spreads consecutive ids evenly. The same rule in numpy (scoring) and in SQL
(lead generation), so a property is always scored and made a lead by the same version.
"""

from __future__ import annotations

import numpy as np

MULTIPLIER = 2654435761
MODULUS = 2**32


def in_challenger_share(property_ids, share: float) -> np.ndarray:
    """True for each property id in the challenger's share."""
    ids = np.asarray(property_ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        hashed = (ids * np.uint64(MULTIPLIER)) % np.uint64(MODULUS)
    return hashed.astype(np.float64) / MODULUS < share


def challenger_share_sql(column: str, share_param: str = "challenger_share") -> str:
    """The same test in SQL, on the bigint `column`, against the parameter %(share_param)s."""
    return f"mod({column}::numeric * {MULTIPLIER}, {MODULUS}) / {MODULUS}.0 < %({share_param})s"
