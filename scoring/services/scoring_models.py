"""Scoring model versions: checking a definition, activating a version, and running a challenger.

Only a draft's definition changes; a version that left draft is frozen (migrations 0008 and 0018 hold it in
the database), and a change to it is a new draft (scoring/services/drafts.py). Which status each change
of a version starts from is written once, in CHANGES_FROM: the services refuse the others, and the admin
offers a change on a version's page only where it is allowed.

A trade has one active version and at most one challenger: a version that scores every property in
shadow and writes the scores (and so makes the leads) of a share of them, picked by a stable hash of the
property id (scoring/challengers.py), so both versions' leads can be compared on their outcomes. The
challenger is then promoted (it becomes the active version) or its challenge ends (it retires).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scoring.engine import FactorSpec, ModelDefinitionError, check_factors
from scoring.errors import ChallengeError
from scoring.features import DETAILS, FALLBACKS, FEATURES, REASON_TEMPLATES
from scoring.models import Factor, ScoringModel, Trade

Status = ScoringModel.Status

# The statuses each change of a version starts from. Activating a challenger is its promotion, a change of
# its own (so a challenger's page offers it once); activating a retired version brings it back as it was.
CHANGES_FROM: dict[str, frozenset[str]] = {
    "activate": frozenset({Status.DRAFT, Status.RETIRED}),
    "promote": frozenset({Status.CHALLENGER}),
    "challenge": frozenset({Status.DRAFT}),
    "end_challenge": frozenset({Status.CHALLENGER}),
}


def scoring_model_allows(model: ScoringModel, change: str) -> bool:
    """Whether `model`'s status allows `change` (a key of CHANGES_FROM)."""
    return model.status in CHANGES_FROM[change]


def scoring_model_is_frozen(model: ScoringModel) -> bool:
    """A version that left draft (challenger, active, retired): its definition no longer changes, so a
    score's model version says how it was computed."""
    return model.status != Status.DRAFT


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
    frozen = scoring_model_is_frozen(model)
    specs = [factor_spec(factor, frozen=frozen) for factor in model.factors.order_by("position")]
    try:
        check_factors(specs, FEATURES, DETAILS)
    except ModelDefinitionError as error:
        raise ValidationError(f"{model}: {error}", code="invalid_scoring_model") from None
    return specs


def _locked(model: ScoringModel) -> ScoringModel:
    """`model` read again under a lock, after its trade's row: changes of a trade's versions (activate,
    challenge, end) run one after the other; the partial unique constraints hold the rules regardless."""
    Trade.objects.select_for_update().get(pk=model.trade_id)
    return ScoringModel.objects.select_related("trade").select_for_update(of=("self",)).get(pk=model.pk)


@transaction.atomic
def scoring_model_activate(*, model: ScoringModel) -> ScoringModel:
    """Make `model` (a draft, a retired version brought back, or the trade's challenger: a promotion) its
    trade's active version and retire the one it replaces, in one transaction. A promoted challenger's
    scores keep their model: they are already this version's.

    The trade row is locked first, so two activations for a trade run one after the other; the
    partial unique constraint scoring_scoringmodel_one_active_per_trade holds the rule regardless.
    """
    model = _locked(model)
    if model.status == ScoringModel.Status.ACTIVE:
        return model
    if not (scoring_model_allows(model, "activate") or scoring_model_allows(model, "promote")):
        raise ChallengeError(f"{model} cannot be activated")
    scoring_model_check(model=model)
    ScoringModel.objects.filter(trade_id=model.trade_id, status=ScoringModel.Status.ACTIVE).update(
        status=ScoringModel.Status.RETIRED
    )
    model.status = ScoringModel.Status.ACTIVE
    model.activated_at = timezone.now()
    model.save(update_fields=["status", "activated_at"])
    return model


@transaction.atomic
def scoring_model_promote(*, model: ScoringModel) -> ScoringModel:
    """Make the trade's challenger `model` its active version (scoring_model_activate); ChallengeError when
    `model` is not a challenger (a draft is activated, not promoted)."""
    model = _locked(model)
    if not scoring_model_allows(model, "promote"):
        raise ChallengeError(f"{model} is not a challenger")
    return scoring_model_activate(model=model)


def _active_version(trade: Trade) -> ScoringModel | None:
    return ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first()


@transaction.atomic
def scoring_model_challenge(*, model: ScoringModel, share: float) -> ScoringModel:
    """Run the draft `model` as its trade's challenger on `share` (0 < share < 1) of the trade's properties,
    from the trade's next scoring run on. ChallengeError when it is not a draft, when the trade has no active
    version to challenge or already runs a challenger, or for a share outside (0, 1); ValidationError when
    its definition cannot be computed.

    Once a challenger, its share is frozen with its factors (migration 0018), so a property is scored by
    the same version from run to run."""
    if not 0 < share < 1:
        raise ChallengeError(
            f"a challenger's share of the properties must be between 0 and 1, both excluded (got {share:g})",
            code="challenger_share_invalid",
            http_status=400,
        )
    model = _locked(model)
    if not scoring_model_allows(model, "challenge"):
        raise ChallengeError(f"{model} is not a draft: only a draft can become a challenger")
    active = _active_version(model.trade)
    if active is None:
        raise ChallengeError(f"{model.trade} has no active version to challenge; activate one first")
    running = ScoringModel.objects.filter(trade_id=model.trade_id, status=ScoringModel.Status.CHALLENGER).first()
    if running is not None:
        raise ChallengeError(
            f"{model.trade} already runs a challenger, v{running.version}: promote it or end its challenge first",
            code="challenger_exists",
        )
    scoring_model_check(model=model)
    model.status = ScoringModel.Status.CHALLENGER
    model.challenger_share = share
    model.save(update_fields=["status", "challenger_share"])
    return model


@transaction.atomic
def scoring_model_challenge_end(*, model: ScoringModel) -> ScoringModel:
    """End the challenge of `model`: it retires, and the trade's next run scores every property with the
    active version again. Its scores and leads keep their model, for the record and the evaluation.
    ChallengeError when `model` is not a challenger."""
    model = _locked(model)
    if not scoring_model_allows(model, "end_challenge"):
        raise ChallengeError(f"{model} is not a challenger")
    model.status = ScoringModel.Status.RETIRED
    model.save(update_fields=["status"])
    return model
