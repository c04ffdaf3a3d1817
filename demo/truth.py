"""The demo market's hidden truth: per property and trade, the probability that the owner buys from the
trade in the next 90 days. simulate_days draws the demo leads' outcomes from it, so that evaluation and
learning have something real to find.

It is deliberately not a scoring model: other weights and shapes (smooth ramps where the default models
have steps), interactions no additive model has (an old roof matters far more after hail; a new owner of
an old home renovates; an owner-occupier with an old roof replaces it, a landlord waits), and a part the
models cannot see at all: each household's income, whether it plans to move, its own taste (noise). The
log-odds of a property and trade on a day are

    intercept + static seen terms + time-varying seen terms (storms, a recent sale) + unseen part

The static parts are drawn by seed_demo and stored in HiddenTruth (seen: from the facts as of the seed
day; unseen: drawn from `numpy.random.default_rng` of the seed, per property in parcel id order). The
time-varying part is worked out for a lead's day from the property's features as of that day
(scoring.features.property_features over scoring.selectors' reads), so a storm after the lead's day
never leaks into its truth. `seen_logit` (the log-odds without the unseen part) is the oracle: the best
any model of the visible facts could know.

Nothing outside demo reads this module or its tables (the import contract "hidden-truth").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from demo.models import HiddenTruth, TruthDraw
from scoring import selectors
from scoring.bulk import copy_rows
from scoring.features import property_features
from scoring.models import Property, Trade

# Storms older than this no longer move anyone (the decay below makes them negligible well before).
STORM_WINDOW_DAYS = 365
HAIL_DECAY_DAYS = 90.0
WIND_DECAY_DAYS = 60.0
NEW_OWNER_DECAY_DAYS = 180.0
MOVING_SHARE = 0.1  # households planning to move within the year: no big work on a home they leave
# The household's latent facts, shared by every trade: income (standard normal) and plans to move.
MOVING_LOGIT = -1.3


@dataclass(frozen=True)
class TruthTrade:
    """One trade's hidden buying model: the intercept, and how much the unseen facts weigh."""

    intercept: float
    income: float  # log-odds per standard deviation of household income
    noise: float  # standard deviation of the household's own taste for this trade


TRUTH_TRADES: dict[str, TruthTrade] = {
    "roofing": TruthTrade(intercept=-4.4, income=0.4, noise=0.45),
    "hvac": TruthTrade(intercept=-4.5, income=0.35, noise=0.45),
    "windows": TruthTrade(intercept=-4.6, income=0.4, noise=0.45),
    "solar": TruthTrade(intercept=-4.3, income=0.6, noise=0.45),
}
# The parts of the log-odds, as truth_terms returns them.
TERMS = ("main_static", "interaction_static", "main_dynamic", "interaction_dynamic")


class TruthError(ValueError):
    """The hidden truth cannot be worked out as asked (a trade it has no model for, no truth seeded)."""


@dataclass(frozen=True)
class TruthShares:
    """How hard the hidden truth is: the share of the variance of its log-odds (within each trade,
    averaged over the trades) that the unseen part carries, and that the interactions carry."""

    unseen_share: float
    interaction_share: float
    per_trade: dict[str, tuple[float, float]]  # slug: (unseen share, interaction share)
    rows: int


def _ramp(values: np.ndarray, middle: float, width: float) -> np.ndarray:
    """A smooth 0-to-1 step centred on `middle` (NaN counts as 0)."""
    return np.nan_to_num(1.0 / (1.0 + np.exp(-(values - middle) / width)))


def _clip01(values: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(values), 0.0, 1.0)


def truth_terms(slug: str, features: pd.DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """The seen parts of a trade's log-odds per property (the features' index), as columns TERMS:
    static main effects and interactions (facts that do not change from day to day), and time-varying
    ones (storms, a recent sale) as of `as_of`. Pure: `features` is property_features' frame as of
    `as_of`, with `last_sale_date` read as of today (a sale after `as_of` is not one yet)."""
    if slug not in TRUTH_TRADES:
        raise TruthError(f"the hidden truth has no model for trade {slug!r}; it has {', '.join(TRUTH_TRADES)}")
    kind = features["property_type"].to_numpy(dtype=object)
    condo, multi, mobile = kind == "condo", kind == "multi_family", kind == "mobile_home"
    owner = (features["owner_occupied"].to_numpy(dtype=object) == True).astype(float)  # noqa: E712 (None stays 0)
    value = features["market_value"].to_numpy(dtype=float)
    value_z = np.nan_to_num(np.log(np.where(value > 0, value, np.nan) / 350_000.0))
    home_age = features["home_age"].to_numpy(dtype=float)
    old_roof = _ramp(features["roof_age"].to_numpy(dtype=float), 20.0, 3.0)
    old_home = _clip01((home_age - 25.0) / 25.0)
    permit_years = features["years_since_trade_permit"].to_numpy(dtype=float)
    has_permit = pd.notna(features["trade_permit_date"]).to_numpy()

    hail = _clip01((features["hail_inches"].to_numpy(dtype=float) - 0.75) / 1.25)
    hail *= np.nan_to_num(np.exp(-features["days_since_hail"].to_numpy(dtype=float) / HAIL_DECAY_DAYS))
    wind = _clip01((features["wind_mph"].to_numpy(dtype=float) - 58.0) / 25.0)
    wind *= np.nan_to_num(np.exp(-features["days_since_wind"].to_numpy(dtype=float) / WIND_DECAY_DAYS))
    sale = pd.to_datetime(features["last_sale_date"], errors="coerce")
    sold_by_then = (sale <= pd.Timestamp(as_of)).to_numpy()
    days_owned = features["days_since_sale"].to_numpy(dtype=float)
    new_owner = np.where(sold_by_then, np.nan_to_num(np.exp(-days_owned / NEW_OWNER_DECAY_DAYS)), 0.0)

    zero = np.zeros(len(features))
    if slug == "roofing":
        main_static = 0.8 * old_roof + 0.35 * value_z + 0.2 * owner - 1.3 * condo - 0.5 * mobile - 0.3 * multi
        interaction_static = 1.5 * owner * old_roof
        main_dynamic = 1.0 * hail + 0.5 * wind + 0.4 * new_owner
        interaction_dynamic = 1.8 * old_roof * hail + 0.8 * old_roof * wind + 0.8 * new_owner * old_home
    elif slug == "hvac":
        old_system = _ramp(permit_years, 15.0, 2.5)
        main_static = 1.2 * old_system + 0.2 * value_z + 0.3 * owner - 0.6 * condo
        interaction_static = 0.8 * old_system * np.clip(value_z + 0.5, 0.0, 1.5) + 0.5 * owner * old_system
        main_dynamic = 0.5 * new_owner + zero
        interaction_dynamic = 1.2 * new_owner * old_system
    elif slug == "windows":
        old_windows = _ramp(home_age, 35.0, 6.0)
        recent_windows = has_permit & (permit_years < 12)
        main_static = 1.0 * old_windows + 0.3 * value_z + 0.3 * owner - 0.4 * condo - 1.5 * recent_windows
        interaction_static = 0.9 * owner * old_windows
        main_dynamic = 0.5 * new_owner + 0.3 * hail
        interaction_dynamic = 1.2 * new_owner * old_home + 0.6 * hail * old_windows
    else:  # solar
        has_solar = has_permit
        main_static = (
            0.3 * value_z + 0.3 * owner - 1.5 * condo - 0.8 * multi - 0.8 * mobile - 2.5 * has_solar - 0.5 * old_roof
        )
        interaction_static = 1.4 * owner * np.clip(value_z + 0.5, 0.0, 2.0)
        main_dynamic = 0.3 * new_owner + zero
        interaction_dynamic = 0.6 * new_owner * np.clip(value_z + 0.5, 0.0, 2.0)
    return pd.DataFrame(
        {
            "main_static": main_static,
            "interaction_static": interaction_static,
            "main_dynamic": main_dynamic,
            "interaction_dynamic": interaction_dynamic,
        },
        index=features.index,
    )


def truth_unseen_draw(*, seed: int, count: int) -> dict[str, np.ndarray]:
    """The households' unseen part of the log-odds per trade, for `count` homes in a fixed order: income
    and plans to move shared by every trade, each trade's own taste. Pure, deterministic for a seed."""
    rng = np.random.default_rng([seed, 0x7A17])  # its own stream: the market's draws stay as they were
    income = rng.standard_normal(count)
    moving = rng.random(count) < MOVING_SHARE
    unseen = {}
    for slug, trade in TRUTH_TRADES.items():
        unseen[slug] = trade.income * income + MOVING_LOGIT * moving + rng.normal(0.0, trade.noise, count)
    return unseen


def _features(trade: Trade, property_ids: list[int] | None, as_of: dt.date, storms: pd.DataFrame) -> pd.DataFrame:
    """property_features of these properties (all when None) for the trade, as of the day."""
    if property_ids is None:
        ranges = selectors.property_id_ranges(rows=10**9)
        if not ranges:
            return property_features(_empty_properties(), storms, as_of=as_of)
        homes = selectors.scoring_properties(
            trade_id=trade.pk, first_id=ranges[0][0], last_id=ranges[-1][1], as_of=as_of
        )
    else:
        homes = selectors.scoring_properties_of(trade_id=trade.pk, property_ids=property_ids, as_of=as_of)
    return property_features(homes, storms, as_of=as_of)


def _empty_properties() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in selectors.SCORING_PROPERTY_TYPES})


def _truth_trades(slugs: Iterable[str] | None = None) -> list[Trade]:
    wanted = list(TRUTH_TRADES) if slugs is None else list(slugs)
    unknown = [slug for slug in wanted if slug not in TRUTH_TRADES]
    if unknown:
        raise TruthError(
            f"the hidden truth has no model for trade {', '.join(unknown)}; it has {', '.join(TRUTH_TRADES)}"
        )
    return list(Trade.objects.filter(slug__in=wanted).order_by("slug"))


@transaction.atomic
def truth_seed(*, seed: int, today: dt.date | None = None) -> int:
    """Draw and store the static hidden truth of every property for the trades of TRUTH_TRADES that
    exist, replacing what was there; returns the rows written. Deterministic for a market and seed: the
    unseen draws go to the properties in parcel id order. One read per trade and one COPY."""
    today = today or timezone.localdate()
    properties = pd.DataFrame(
        list(Property.objects.order_by("parcel_id").values_list("id", "parcel_id")), columns=["id", "parcel_id"]
    )
    HiddenTruth.objects.all().delete()
    if properties.empty:
        return 0
    unseen = truth_unseen_draw(seed=seed, count=len(properties))
    no_storms = pd.DataFrame({column: pd.Series(dtype=object) for column in selectors.SCORING_STORM_TYPES})
    frames = []
    for trade in _truth_trades():
        features = _features(trade, None, today, no_storms)
        terms = truth_terms(trade.slug, features, as_of=today).reindex(properties["id"].to_numpy())
        seen = TRUTH_TRADES[trade.slug].intercept + terms["main_static"] + terms["interaction_static"]
        frames.append(
            pd.DataFrame(
                {
                    "property_id": properties["id"].to_numpy(),
                    "trade_id": trade.pk,
                    "seen_logit": np.round(seen.to_numpy(), 6),
                    "unseen_logit": np.round(unseen[trade.slug], 6),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    with connection.cursor() as cursor:
        copy_rows(cursor, HiddenTruth._meta.db_table, rows)
    return len(rows)


def _static(trade: Trade, property_ids: list[int] | None) -> pd.DataFrame:
    """The stored static truth of the trade: seen_logit, unseen_logit, indexed by property id."""
    rows = HiddenTruth.objects.filter(trade=trade)
    if property_ids is not None:
        rows = rows.filter(property_id__in=property_ids)
    frame = pd.DataFrame(
        list(rows.values_list("property_id", "seen_logit", "unseen_logit")),
        columns=["property_id", "seen_logit", "unseen_logit"],
    )
    return frame.set_index("property_id")


def truth_on_day(*, trade: Trade, property_ids: list[int] | None, as_of: dt.date) -> pd.DataFrame:
    """The hidden truth of the trade's properties (all when None) on a day, indexed by property id:
    probability, seen_logit (the oracle's log-odds), unseen_logit, and the terms of truth_terms. A
    property without a stored truth is left out; TruthError when the trade has none at all."""
    static = _static(trade, property_ids)
    if static.empty:
        raise TruthError(f"no hidden truth is seeded for {trade.slug} (seed_demo draws it)")
    storms = selectors.scoring_storms(as_of=as_of, window_days=STORM_WINDOW_DAYS)
    features = _features(trade, None if property_ids is None else sorted(static.index), as_of, storms)
    terms = truth_terms(trade.slug, features, as_of=as_of)
    frame = terms.join(static, how="inner")
    frame["seen_logit"] = frame["seen_logit"] + frame["main_dynamic"] + frame["interaction_dynamic"]
    frame["probability"] = 1.0 / (1.0 + np.exp(-(frame["seen_logit"] + frame["unseen_logit"])))
    return frame


def truth_variance_shares(*, as_of: dt.date | None = None, trades: Iterable[str] | None = None) -> TruthShares:
    """The share of the variance of the hidden truth's log-odds (per trade, over every property, on
    `as_of`) carried by its unseen part and by its interactions; the figures are the trades' mean. The
    truth is hard enough to mean something when the first is at least 0.2 and the second at least 0.1."""
    as_of = as_of or timezone.localdate()
    per_trade: dict[str, tuple[float, float]] = {}
    rows = 0
    for trade in _truth_trades(trades):
        frame = truth_on_day(trade=trade, property_ids=None, as_of=as_of)
        total = np.var(frame["seen_logit"] + frame["unseen_logit"])
        if not total > 0:
            raise TruthError(f"the hidden truth of {trade.slug} does not vary over {len(frame)} properties")
        unseen = np.var(frame["unseen_logit"]) / total
        interaction = np.var(frame["interaction_static"] + frame["interaction_dynamic"]) / total
        per_trade[trade.slug] = (float(unseen), float(interaction))
        rows += len(frame)
    if not per_trade:
        raise TruthError("no trade of the hidden truth exists")
    return TruthShares(
        unseen_share=float(np.mean([shares[0] for shares in per_trade.values()])),
        interaction_share=float(np.mean([shares[1] for shares in per_trade.values()])),
        per_trade=per_trade,
        rows=rows,
    )


def truth_for_leads(lead_ids: Iterable[int]) -> pd.DataFrame:
    """The truth each of these leads' outcome was drawn from (simulate_days' TruthDraw): lead_id,
    probability, seen_logit, by lead id; leads without a draw are left out."""
    rows = TruthDraw.objects.filter(lead_id__in=sorted(set(lead_ids))).order_by("lead_id")
    return pd.DataFrame(
        list(rows.values_list("lead_id", "probability", "seen_logit")), columns=["lead_id", "probability", "seen_logit"]
    )
