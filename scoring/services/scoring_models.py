"""Scoring model versions: checking a definition and activating a version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scoring.engine import FactorSpec, ModelDefinitionError, check_factors
from scoring.features import DETAILS, FEATURES
from scoring.models import Factor, ScoringModel, Trade


def factor_spec(factor: Factor) -> FactorSpec:
    return FactorSpec(
        feature=factor.feature, transform=factor.transform, weight=factor.weight, params=factor.params or {},
        reason=factor.reason,
    )  # fmt: skip


def scoring_model_check(*, model: ScoringModel) -> list[FactorSpec]:
    """The model's factors as the engine runs them; ValidationError with the engine's message if the
    definition cannot be computed (unknown feature, ramp with low >= high, negative half-life...)."""
    specs = [factor_spec(factor) for factor in model.factors.order_by("position")]
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
