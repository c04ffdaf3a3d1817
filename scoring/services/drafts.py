"""Drafts made from a version, and what a draft changes.

A version that left draft is frozen (scoring_model_is_frozen), so changing one weight of the active
version means a new draft: a copy of that version with every factor, edited, previewed and then
activated or run as challenger. Beside its preview, a draft shows how it differs from its trade's active
version (scoring_model_differences), so staff see what they are about to change.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone

from scoring.models import Factor, ScoringModel, Trade

# What a copy leaves behind: who the version is (its id, number, status, when it was made and activated),
# and what belongs to that version rather than to its definition: the challenger share (set when a draft
# is run as challenger), the backtest (the figures of that version's fit, which an edited copy no longer
# has) and the notes (the copy's say where it came from, then the source's). Every other field is copied,
# and compared by scoring_model_differences: a field added to the model is copied without a change here.
VERSION_NOT_COPIED = frozenset(
    {"id", "version", "status", "notes", "challenger_share", "backtest", "created_at", "activated_at"}
)
FACTOR_NOT_COPIED = frozenset({"id", "model"})
# A factor is matched by its feature, so these say what changed in it. Its position only orders reasons,
# and removing one factor renumbers those after it: comparing positions would flag factors that did not change.
FACTOR_NOT_COMPARED = FACTOR_NOT_COPIED | {"position", "feature"}


def _copied_fields(instance: models.Model, not_copied: frozenset[str]) -> dict[str, Any]:
    return {
        f.attname: copy.deepcopy(getattr(instance, f.attname))
        for f in instance._meta.concrete_fields
        if f.name not in not_copied
    }


@transaction.atomic
def scoring_model_draft_copy(*, model: ScoringModel, by: AbstractBaseUser | None = None) -> ScoringModel:
    """A new draft of `model`'s trade holding a copy of `model` (of any status) and of every factor, numbered
    after the trade's last version. Its notes say which version it copies, who made it and when, then
    `model`'s notes.

    The trade's row is locked first, as activation and learning do, so copies made at the same moment get
    the next numbers one after the other; scoring_scoringmodel_version_unique holds the rule regardless."""
    Trade.objects.select_for_update().get(pk=model.trade_id)
    source = ScoringModel.objects.get(pk=model.pk)
    version = (ScoringModel.objects.filter(trade_id=source.trade_id).aggregate(last=Max("version"))["last"] or 0) + 1
    made = f"Copied from v{source.version}" + (f" by {by.get_username()}" if by is not None else "")
    notes = f"{made} on {timezone.localdate():%Y-%m-%d}." + (f"\n\n{source.notes}" if source.notes else "")
    draft = ScoringModel.objects.create(
        **_copied_fields(source, VERSION_NOT_COPIED), version=version, status=ScoringModel.Status.DRAFT, notes=notes
    )
    Factor.objects.bulk_create(
        Factor(**_copied_fields(factor, FACTOR_NOT_COPIED), model=draft)
        for factor in source.factors.order_by("position")
    )
    return draft


@dataclass(frozen=True)
class Change:
    """One field whose value differs: its name as the admin labels it, the active version's value and the draft's."""

    name: str
    old: Any
    new: Any

    @property
    def old_text(self) -> str:
        return _shown(self.old)

    @property
    def new_text(self) -> str:
        return _shown(self.new)


@dataclass(frozen=True)
class FactorDifference:
    """A factor the draft adds, one it removes (`factor` is then the active version's), or one it changes."""

    kind: str  # "added", "removed" or "changed"
    factor: Factor
    changes: list[Change] = field(default_factory=list)

    @property
    def params_text(self) -> str:
        return _shown(self.factor.params)


@dataclass(frozen=True)
class Differences:
    """What `model` changes from its trade's active version (`active`, None when the trade has none)."""

    model: ScoringModel
    active: ScoringModel | None
    fields: list[Change] = field(default_factory=list)
    factors: list[FactorDifference] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return self.active is not None and not self.fields and not self.factors


def scoring_model_differences(*, model: ScoringModel) -> Differences:
    """The version-level fields (those a copy carries, but its trade) and the factors in which `model`
    differs from its trade's active version: factors added, removed, and changed (each changed field, old
    and new). A factor is matched to the active version's on the same feature: first one with the same
    transform and parameters (its weight or reasons changed), then the next one on that feature in
    position order (its shape changed)."""
    active = ScoringModel.objects.filter(trade_id=model.trade_id, status=ScoringModel.Status.ACTIVE).first()
    if active is None:
        return Differences(model=model, active=None)
    compared = [f for f in ScoringModel._meta.concrete_fields if f.name not in VERSION_NOT_COPIED | {"trade"}]
    fields = _changes(active, model, compared)
    old = list(active.factors.order_by("position"))
    new = list(model.factors.order_by("position"))
    pairs, added, removed = _paired(old, new)
    factor_fields = [f for f in Factor._meta.concrete_fields if f.name not in FACTOR_NOT_COMPARED]
    differences = [FactorDifference("added", factor) for factor in added]
    for before, after in pairs:
        changes = _changes(before, after, factor_fields)
        if changes:
            differences.append(FactorDifference("changed", after, changes))
    differences.sort(key=lambda difference: difference.factor.position)
    differences += [FactorDifference("removed", factor) for factor in removed]
    return Differences(model=model, active=active, fields=fields, factors=differences)


def _paired(old: list[Factor], new: list[Factor]) -> tuple[list[tuple[Factor, Factor]], list[Factor], list[Factor]]:
    """(pairs of the active version's factor and the draft's, the draft's factors left, the active's left)."""
    unpaired_old = list(old)
    pending = list(new)
    pairs: list[tuple[Factor, Factor]] = []
    for key in (_shape, _feature):
        left = []
        for factor in pending:
            match = next((candidate for candidate in unpaired_old if key(candidate) == key(factor)), None)
            if match is None:
                left.append(factor)
            else:
                unpaired_old.remove(match)
                pairs.append((match, factor))
        pending = left
    return pairs, pending, unpaired_old


def _shape(factor: Factor) -> tuple[str, str, str]:
    return factor.feature, factor.transform, json.dumps(factor.params, sort_keys=True)


def _feature(factor: Factor) -> str:
    return factor.feature


def _changes(old: models.Model, new: models.Model, fields: list[Any]) -> list[Change]:
    return [
        Change(str(f.verbose_name).capitalize(), getattr(old, f.attname), getattr(new, f.attname))
        for f in fields
        if getattr(old, f.attname) != getattr(new, f.attname)
    ]


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return f"{value:g}"
    return "(none)" if value in ("", None) else str(value)
