"""Scored homes, territories and leads for the leads tests, built through the real models and services."""

from __future__ import annotations

import itertools

from django.utils import timezone
from rest_framework.test import APIClient

from contractors.models import Contractor
from contractors.services.api_keys import api_key_create
from leads.models import Lead, LeadFilter
from scoring.models import Factor, Property, Score, ScoringModel, Trade
from scoring.services.scoring_models import scoring_model_activate
from territories.services.claims import territory_claim_many
from tests.contractors.factories import ContractorFactory

_numbers = itertools.count(1)
ROOF_REASON = {"feature": "roof_age", "value": 23, "points": 35.0, "text": "Roof is 23 years old"}


def home(
    *,
    zip_code: str = "80202",
    address: str | None = None,
    parcel_id: str | None = None,
    owner_name: str = "",
    owner_occupied: bool | None = True,
    property_type: str = Property.Type.SINGLE_FAMILY,
) -> Property:
    number = next(_numbers)
    return Property.objects.create(
        parcel_id=parcel_id or f"P-{number:06d}",
        address=address or f"{number} Main St",
        city="Denver",
        state="CO",
        zip_code_id=zip_code,
        owner_name=owner_name,
        owner_occupied=owner_occupied,
        property_type=property_type,
        year_built=1990,
    )


def scored(prop: Property, trade: Trade, *, score: float, urgency: float = 0.0, reasons: list | None = None) -> Score:
    """The property's current score for the trade, by the trade's active model."""
    model = active_model(trade)
    return Score.objects.create(
        property=prop,
        trade=trade,
        model=model,
        score=score,
        urgency=urgency,
        reasons=reasons if reasons is not None else [ROOF_REASON],
        scored_at=timezone.now(),
        digest=0,
    )


def active_model(trade: Trade) -> ScoringModel:
    """The trade's active model; a one-factor version 1 when a transactional test emptied the tables."""
    model = ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first()
    if model is None:
        model = ScoringModel.objects.create(trade=trade, version=1)
        Factor.objects.create(
            model=model, position=0, feature="roof_age", transform="ramp", params={"low": 10, "high": 30}, weight=1,
            reason="Roof is {value:.0f} years old",
            reason_fallback="No roof replacement on record; home built in {year_built:.0f}",
        )  # fmt: skip
        model = scoring_model_activate(model=model)
    return model


def scored_home(trade: Trade, *, score: float, urgency: float = 0.0, **home_fields) -> Property:
    prop = home(**home_fields)
    scored(prop, trade, score=score, urgency=urgency)
    return prop


def owner(trade: Trade, *zip_codes: str, **fields) -> Contractor:
    """A contractor serving `trade` that owns its `zip_codes` territories."""
    contractor = ContractorFactory(trades=[trade], **fields)
    if zip_codes:
        territory_claim_many(contractor=contractor, trade=trade, zip_codes=zip_codes)
    return contractor


def filters(trade: Trade, **fields) -> LeadFilter:
    """The trade's filters, set to `fields` over permissive defaults (any score, no ZIP limit, no volume target)."""
    values = {"min_score": 0, "max_per_zip_per_day": None, "cooldown_days": 90, "enabled": True}
    values |= {"capacity_factor": None} | fields
    lead_filter, _ = LeadFilter.objects.update_or_create(trade=trade, defaults=values)
    return lead_filter


def leads_of(trade: Trade) -> list[Lead]:
    return list(Lead.objects.filter(trade=trade).order_by("-priority", "-score", "property_id"))


def api_client(contractor: Contractor) -> APIClient:
    """An API client calling with a new key of `contractor`."""
    _, raw = api_key_create(contractor=contractor, name="CRM")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def lead_snapshot(lead: Lead) -> tuple[dict, int]:
    """Every column of the lead as the database holds it now, and its number of events."""
    lead.refresh_from_db()
    return {f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields}, lead.events.count()


FINAL_STATES = ("converted", "rejected", "returned", "expired", "withdrawn")


def outcome_lead(
    trade: Trade,
    model: ScoringModel,
    contractor: Contractor | None,
    *,
    score: float,
    state: str,
    reasons: tuple[str, ...] = (),
    exploration: bool = False,
    sampling_weight: float = 1.0,
    generated_on=None,
) -> Lead:
    """A lead of `model` in `state` as its lifecycle leaves it, written directly (evaluation reads only the
    columns): assigned to `contractor` at generation (None: never assigned), closed now when final."""
    now = timezone.now()
    return Lead.objects.create(
        property=home(), trade=trade, zip_code="80202", state=state, contractor=contractor, score=score, urgency=0,
        priority=score, model=model, model_version=model.version,
        reasons=[{"feature": name, "value": 1, "points": 10.0, "text": name} for name in reasons],
        exploration=exploration, sampling_weight=sampling_weight,
        generated_on=generated_on or timezone.localdate(), created_at=now,
        assigned_at=now if contractor else None, closed_at=now if state in FINAL_STATES else None,
    )  # fmt: skip


# Ten leads with known outcomes whose figures tests work out by hand (tests/leads/test_quality.py): score,
# state, reason features; the last is an exploration lead drawn with a chance of 1 in 5 (weight 5).
TINY_SET = [
    (95, "converted", ("roof_age", "hail_recent")),
    (90, "returned", ("roof_age",)),
    (85, "converted", ("hail_recent",)),
    (80, "rejected", ("roof_age",)),
    (75, "expired", ("roof_age", "hail_recent")),
    (70, "converted", ("home_age",)),
    (65, "returned", ("home_age",)),
    (60, "rejected", ("roof_age",)),
    (55, "expired", ("home_age",)),
    (30, "converted", ("home_age",)),
]


def tiny_set(trade: Trade, model: ScoringModel, contractor: Contractor, *, generated_on=None) -> list[Lead]:
    """TINY_SET's leads for `model`, the last one drawn for exploration with weight 5."""
    return [
        outcome_lead(
            trade,
            model,
            contractor,
            score=score,
            state=state,
            reasons=reasons,
            generated_on=generated_on,
            exploration=index == len(TINY_SET) - 1,
            sampling_weight=5.0 if index == len(TINY_SET) - 1 else 1.0,
        )
        for index, (score, state, reasons) in enumerate(TINY_SET)
    ]
