"""Scoring model versions: checking a definition and activating a version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scoring.engine import FactorSpec, ModelDefinitionError, check_factors
from scoring.features import DETAILS, FALLBACKS, FEATURES, REASON_TEMPLATES
from scoring.models import Factor, ScoringModel, Trade


def factor_spec(factor: Factor, *, frozen: bool = False) -> FactorSpec:
    """The engine's view of a factor; `record` is the detail whose absence makes its feature's value a
    fallback (scoring.features.FALLBACKS).

    `frozen`: the factor belongs to a version that can no longer change (active, challenger, retired).
    Such a version written before fallback texts existed gets the feature's generic one
    (REASON_TEMPLATES), so it keeps scoring and never presents a fallback as a record; a draft must
    carry its own, which check_factors asks for."""
    record = FALLBACKS.get(factor.feature, "")
    reason_fallback = factor.reason_fallback
    if frozen and record and factor.reason and not reason_fallback:
        reason_fallback = REASON_TEMPLATES[factor.feature][1]
    return FactorSpec(
        feature=factor.feature, transform=factor.transform, weight=factor.weight, params=factor.params or {},
        reason=factor.reason, reason_fallback=reason_fallback, record=record,
    )  # fmt: skip


def scoring_model_check(*, model: ScoringModel) -> list[FactorSpec]:
    """The model's factors as the engine runs them; ValidationError with the engine's message if the
    definition cannot be computed (unknown feature, ramp with low >= high, negative half-life, a reason
    on a feature with a fallback but no text for it...)."""
    frozen = model.status != ScoringModel.Status.DRAFT
    specs = [factor_spec(factor, frozen=frozen) for factor in model.factors.order_by("position")]
    try:
        check_factors(specs, FEATURES, DETAILS)
    except ModelDefinitionError as error:
        raise ValidationError(f"{model}: {error}", code="invalid_scoring_model") from None
    return specs


@transaction.atomic
def scoring_model_activate(*, model: ScoringModel) -> ScoringModel:
    """Make `model` its trade's active version and retire the one it replaces, in one transaction.

    The trade row is locked first, so two activations for a trade run one after the other; the
    partial unique constraint scoring_scoringmodel_one_active_per_trade holds the rule regardless.
    """
    Trade.objects.select_for_update().get(pk=model.trade_id)
    model = ScoringModel.objects.select_for_update().get(pk=model.pk)
    if model.status == ScoringModel.Status.ACTIVE:
        return model
    scoring_model_check(model=model)
    ScoringModel.objects.filter(trade_id=model.trade_id, status=ScoringModel.Status.ACTIVE).update(
        status=ScoringModel.Status.RETIRED
    )
    model.status = ScoringModel.Status.ACTIVE
    model.activated_at = timezone.now()
    model.save(update_fields=["status", "activated_at"])
    return model
