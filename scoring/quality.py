"""How well scores rank outcomes: the figures of lead quality. Pure numpy, no ORM.

Every figure takes, per lead whose outcome is known: its `score` (any scale; only the order counts),
whether it converted (`label`, 1 or 0) and its sampling weight (`weight`: 1 for a lead picked best
first, 1 / its chance of being drawn for an exploration lead; None: all 1). A weighted figure is the
figure of the population the leads stand for.

- AUC: the chance that a converting lead scores above one that did not (ties count half).
- Deciles: the leads cut into ten equal shares of weight by score, best first; a decile's conversion
  rate over the whole rate is its lift.
- Calibration: the observed conversion rate per score band (10 points): on a 0-100 score it should fall
  band by band from the top.
- Per group (a lead's reasons): the conversion rate of the leads in each group, and its lift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECILES = 10


def _arrays(score, label, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.asarray(score, dtype=float)
    label = np.asarray(label, dtype=float)
    weight = np.ones(len(score)) if weight is None else np.asarray(weight, dtype=float)
    if not (len(score) == len(label) == len(weight)):
        raise ValueError("score, label and weight must have one value per lead")
    if len(score) and (np.isnan(score).any() or not np.isin(label, (0, 1)).all() or (weight < 0).any()):
        raise ValueError("scores must be numbers, labels 0 or 1, weights 0 or more")
    return score, label, weight


def _sorted_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts the scores, and where each distinct score starts in it."""
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    return order, np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.array([], int)


def _auc_sorted(positive: np.ndarray, negative: np.ndarray, starts: np.ndarray) -> float | None:
    total_positive, total_negative = positive.sum(), negative.sum()
    if total_positive <= 0 or total_negative <= 0:
        return None
    # Per distinct score: the weight of converting and other leads at it, and of other leads below it.
    pos_at = np.add.reduceat(positive, starts)
    neg_at = np.add.reduceat(negative, starts)
    neg_below = np.cumsum(neg_at) - neg_at
    return float((pos_at * (neg_below + 0.5 * neg_at)).sum() / (total_positive * total_negative))


def auc(score, label, weight=None) -> float | None:
    """Weighted AUC (Mann-Whitney with ties counted half); None without both a conversion and a non-conversion."""
    score, label, weight = _arrays(score, label, weight)
    order, starts = _sorted_groups(score)
    label, weight = label[order], weight[order]
    return _auc_sorted(weight * label, weight * (1 - label), starts)


def auc_interval(
    score, label, weight=None, *, resamples: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """The `level` interval of the AUC by bootstrap: the leads drawn again with replacement `resamples`
    times (as a count per lead, so the scores are sorted once), percentiles of the AUCs; None when the
    AUC is."""
    score, label, weight = _arrays(score, label, weight)
    order, starts = _sorted_groups(score)
    label, weight = label[order], weight[order]
    if _auc_sorted(weight * label, weight * (1 - label), starts) is None:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = weight * np.bincount(rng.integers(0, len(score), len(score)), minlength=len(score))
        value = _auc_sorted(drawn * label, drawn * (1 - label), starts)
        if value is not None:
            values.append(value)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Decile:
    number: int  # 1: the best scores
    leads: int
    weight: float
    conversions: int
    conversion_rate: float | None  # weighted
    return_rate: float | None  # weighted
    lowest_score: float | None
    highest_score: float | None


def deciles(score, label, weight=None, returned=None) -> list[Decile]:
    """The leads in ten shares of equal weight, best scores first. A lead goes to the decile its weight's
    midpoint falls in, leads of equal score together (the first decile it reaches), so a decile may hold
    a little more or less than a tenth. `returned`: 1 for a lead the contractor returned."""
    score, label, weight = _arrays(score, label, weight)
    returned = np.zeros(len(score)) if returned is None else np.asarray(returned, dtype=float)
    order = np.lexsort((np.arange(len(score)), -score))
    score, label, weight, returned = score[order], label[order], weight[order], returned[order]
    total = weight.sum()
    result = []
    if total <= 0:
        return [Decile(n, 0, 0.0, 0, None, None, None, None) for n in range(1, DECILES + 1)]
    midpoint = np.cumsum(weight) - weight / 2
    number = np.minimum((midpoint / total * DECILES).astype(int), DECILES - 1)
    # Equal scores share the decile of the first of them.
    starts = np.r_[True, score[1:] != score[:-1]]
    number = np.maximum.accumulate(np.where(starts, number, -1))
    for n in range(DECILES):
        inside = number == n
        w = weight[inside].sum()
        result.append(
            Decile(
                number=n + 1,
                leads=int(inside.sum()),
                weight=float(w),
                conversions=int(label[inside].sum()),
                conversion_rate=float((weight * label)[inside].sum() / w) if w > 0 else None,
                return_rate=float((weight * returned)[inside].sum() / w) if w > 0 else None,
                lowest_score=float(score[inside].min()) if inside.any() else None,
                highest_score=float(score[inside].max()) if inside.any() else None,
            )
        )
    return result


def top_decile_lift(score, label, weight=None) -> float | None:
    """The best-scored tenth's conversion rate over the whole rate; None with no conversion."""
    score, label, weight = _arrays(score, label, weight)
    total = weight.sum()
    if total <= 0 or (weight * label).sum() <= 0:
        return None
    first = deciles(score, label, weight)[0]
    if first.conversion_rate is None:
        return None
    return float(first.conversion_rate / ((weight * label).sum() / total))


@dataclass(frozen=True)
class Band:
    low: float  # the band holds scores from low (inclusive) to low + its width (the last band: to 100)
    high: float
    leads: int
    weight: float
    conversions: int
    mean_score: float  # weighted
    conversion_rate: float  # weighted, observed


def calibration(score, label, weight=None, *, width: float = 10, top: float = 100) -> list[Band]:
    """The observed conversion rate per score band of `width` points, best band first, bands without a
    lead left out: a score that ranks well rises band by band. A score of `top` counts in the band below
    it (90-100 holds 100)."""
    score, label, weight = _arrays(score, label, weight)
    if width <= 0:
        raise ValueError("the band width must be more than 0")
    last = int(np.ceil(top / width)) - 1
    number = np.clip(np.floor(score / width), 0, last).astype(int)
    result = []
    for n in np.unique(number)[::-1]:
        inside = number == n
        w = weight[inside]
        total = float(w.sum())
        result.append(
            Band(
                low=float(n * width),
                high=float(min((n + 1) * width, top) if n == last else (n + 1) * width),
                leads=int(inside.sum()),
                weight=total,
                conversions=int(label[inside].sum()),
                mean_score=float((w * score[inside]).sum() / total) if total > 0 else float(score[inside].mean()),
                conversion_rate=float((w * label[inside]).sum() / total) if total > 0 else 0.0,
            )
        )
    return result


@dataclass(frozen=True)
class GroupRate:
    name: str
    leads: int
    weight: float
    conversions: int
    conversion_rate: float  # weighted
    lift: float | None  # the rate over the rate of every lead; None when no lead converted


def rates_by_group(groups, label, weight=None) -> list[GroupRate]:
    """The conversion rate of the leads in each group, where a lead may be in several groups (`groups`: one
    list of names per lead, e.g. the features of its reasons) or none. Most leads first, then by name."""
    _, label, weight = _arrays(np.zeros(len(label)), label, weight)
    if len(groups) != len(label):
        raise ValueError("groups, label and weight must have one value per lead")
    overall = float((weight * label).sum() / weight.sum()) if weight.sum() > 0 else 0.0
    flat = [name for names in groups for name in names]
    if not flat:
        return []
    numbered: dict[str, int] = {}
    codes = np.fromiter((numbered.setdefault(name, len(numbered)) for name in flat), dtype=np.int64, count=len(flat))
    names = list(numbered)
    index = np.repeat(np.arange(len(groups)), [len(names_of) for names_of in groups])
    # (lead, group) pairs once each: a name twice in one lead's list counts it once.
    pairs = np.sort(index * len(names) + codes)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    lead, code = pairs // len(names), pairs % len(names)
    leads = np.bincount(code, minlength=len(names))
    weights = np.bincount(code, weights=weight[lead], minlength=len(names))
    converted = np.bincount(code, weights=(weight * label)[lead], minlength=len(names))
    conversions = np.bincount(code, weights=label[lead], minlength=len(names)).round().astype(int)
    result = []
    for n, name in enumerate(names):
        rate = float(converted[n] / weights[n]) if weights[n] > 0 else 0.0
        result.append(
            GroupRate(
                name=str(name),
                leads=int(leads[n]),
                weight=float(weights[n]),
                conversions=int(conversions[n]),
                conversion_rate=rate,
                lift=rate / overall if overall > 0 else None,
            )
        )
    result.sort(key=lambda group: (-group.leads, group.name))
    return result
