import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from scoring.models import Factor, ScoringModel, Trade
from scoring.services.scoring_models import scoring_model_activate, scoring_model_check
from tests.racing import race


@pytest.fixture
def roofing(db):
    """The roofing trade without its default model, so that each test writes the versions it needs."""
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    return trade


def version(trade, number, *factors):
    model = ScoringModel.objects.create(trade=trade, version=number)
    for position, (feature, transform, params, weight) in enumerate(factors):
        Factor.objects.create(
            model=model, position=position, feature=feature, transform=transform, params=params, weight=weight
        )
    return model


ROOF = ("roof_age", "ramp", {"low": 10, "high": 25}, 40)
HAIL = ("days_since_hail", "decay", {"half_life_days": 30}, 30)


def test_activating_a_version_retires_the_active_one(roofing):
    first = scoring_model_activate(model=version(roofing, 1, ROOF))
    second = scoring_model_activate(model=version(roofing, 2, ROOF, HAIL))

    first.refresh_from_db()
    assert (first.status, second.status) == (ScoringModel.Status.RETIRED, ScoringModel.Status.ACTIVE)
    assert second.activated_at is not None
    assert list(ScoringModel.objects.filter(trade=roofing, status="active").values_list("version", flat=True)) == [2]


def test_the_database_refuses_a_second_active_version(roofing):
    scoring_model_activate(model=version(roofing, 1, ROOF))
    other = version(roofing, 2, ROOF)
    with pytest.raises(IntegrityError, match="scoring_scoringmodel_one_active_per_trade"), transaction.atomic():
        ScoringModel.objects.filter(pk=other.pk).update(status=ScoringModel.Status.ACTIVE)
    assert ScoringModel.objects.get(pk=other.pk).status == ScoringModel.Status.DRAFT


@pytest.mark.parametrize(
    ("factor", "message"),
    [
        (("roof_age", "ramp", {"low": 25, "high": 10}, 40), "a ramp needs low < high"),
        (("days_since_hail", "decay", {"half_life_days": -3}, 30), "the half-life must be positive"),
        (("roof_colour", "flag", {}, 10), "unknown feature"),
    ],
)
def test_a_bad_definition_is_not_activated_and_the_active_version_stays(roofing, factor, message):
    active = scoring_model_activate(model=version(roofing, 1, ROOF))
    bad = version(roofing, 2, ROOF, factor)

    with pytest.raises(ValidationError, match=message):
        scoring_model_activate(model=bad)

    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "active",
        2: "draft",
    }
    assert active.pk == ScoringModel.objects.get(trade=roofing, status="active").pk


def test_check_returns_the_factors_in_position_order(roofing):
    specs = scoring_model_check(model=version(roofing, 1, ROOF, HAIL))
    assert [(spec.feature, spec.transform, spec.weight) for spec in specs] == [
        ("roof_age", "ramp", 40),
        ("days_since_hail", "decay", 30),
    ]


@pytest.mark.django_db(transaction=True)
def test_racing_activations_leave_exactly_one_active_version():
    trade = Trade.objects.create(slug="gutters", name="Gutters")
    drafts = [version(trade, number, ROOF) for number in range(1, 9)]
    _, errors = race(lambda model: scoring_model_activate(model=model), drafts)

    assert errors == []
    statuses = list(ScoringModel.objects.filter(trade=trade).values_list("status", flat=True))
    assert sorted(statuses) == ["active"] + ["retired"] * 7


def test_admin_action_activates_a_valid_version_and_reports_a_bad_one(staff_client, roofing):
    good = version(roofing, 1, ROOF)
    bad = version(roofing, 2, ("roof_age", "ramp", {"low": 25, "high": 10}, 40))

    response = staff_client.post(
        "/admin/scoring/scoringmodel/",
        {"action": "activate", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert "Roofing v1 is now active." in page
    assert "a ramp needs low &lt; high (got low 25, high 10)" in page
    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "active",
        2: "draft",
    }


def test_factors_of_an_active_version_are_read_only_in_the_admin(staff_client, roofing):
    active = scoring_model_activate(model=version(roofing, 1, ROOF))
    page = staff_client.get(f"/admin/scoring/scoringmodel/{active.pk}/change/").content.decode()
    assert 'name="factors-0-weight"' not in page
    assert "Roof age (years; roof year, else year built)" in page


def default_models_migration():
    import importlib

    return importlib.import_module("scoring.migrations.0005_default_scoring_models")


@pytest.mark.parametrize("slug", ["roofing", "solar", "hvac", "windows"])
def test_default_models_are_valid_and_their_weights_read_as_points(slug):
    from scoring.engine import FactorSpec, check_factors
    from scoring.features import FEATURES

    factors = [
        FactorSpec(feature=f, transform=t, params=p, weight=w, reason=r)
        for f, t, p, w, r in default_models_migration().DEFAULT_MODELS[slug]
    ]
    check_factors(factors, FEATURES)
    assert sum(factor.weight for factor in factors) == 100


@pytest.mark.django_db
def test_default_models_are_created_active_once_and_never_over_staff_models():
    from django.apps import apps

    for slug, name in [("roofing", "Roofing"), ("solar", "Solar"), ("hvac", "HVAC"), ("windows", "Windows")]:
        Trade.objects.get_or_create(slug=slug, defaults={"name": name})
    ScoringModel.objects.all().delete()
    staff_model = ScoringModel.objects.create(trade=Trade.objects.get(slug="solar"), version=7)

    create = default_models_migration().create_default_models
    create(apps, None)
    create(apps, None)

    created = ScoringModel.objects.exclude(pk=staff_model.pk)
    assert sorted(created.values_list("trade__slug", "version", "status")) == [
        ("hvac", 1, "active"),
        ("roofing", 1, "active"),
        ("windows", 1, "active"),
    ]
    assert Factor.objects.filter(model__in=created).count() == 18
    assert not ScoringModel.objects.filter(trade__slug="solar", version=1).exists()
