"""Scoring model versions in the back office: a version that left draft is read-only, "New draft from this
version" copies it whole, a version's page offers the changes its status allows, and a draft shows what it
changes from the active version."""

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.db import IntegrityError, transaction

from scoring.errors import ChallengeError
from scoring.models import Factor, ScoringModel, Trade
from scoring.services.drafts import scoring_model_differences, scoring_model_draft_copy
from scoring.services.scoring_models import (
    scoring_model_activate,
    scoring_model_challenge,
    scoring_model_challenge_end,
    scoring_model_promote,
)
from tests.admin_pages import messages_of, page_of
from tests.racing import race
from tests.scoring.test_scoring_runs import FACTORS, model_version

Status = ScoringModel.Status
CHANGELIST = "/admin/scoring/scoringmodel/"
FACTOR_FIELDS = [f.attname for f in Factor._meta.concrete_fields if f.name not in ("id", "model")]
BUTTONS = {
    "activate": "Activate",
    "challenge": "Run as challenger",
    "promote": "Promote to active",
    "end_challenge": "End the challenge",
    "new_draft": "New draft from this version",
}


@pytest.fixture
def roofing(db):
    """Roofing without its default versions: v1 retired, v2 active (FACTORS, a 60-day storm window)."""
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    model_version(trade, 1)
    active = model_version(trade, 2, window=60)
    ScoringModel.objects.filter(pk=active.pk).update(notes="Hail weighs more")
    return trade


def active_of(trade: Trade) -> ScoringModel:
    return ScoringModel.objects.get(trade=trade, status=Status.ACTIVE)


def factor_rows(model: ScoringModel) -> list[tuple]:
    return [tuple(getattr(f, name) for name in FACTOR_FIELDS) for f in model.factors.order_by("position")]


def change_page(model: ScoringModel) -> str:
    return f"{CHANGELIST}{model.pk}/change/"


def offered(client, model: ScoringModel) -> set[str]:
    page = page_of(client.get(change_page(model)))
    return {name for name, label in BUTTONS.items() if f'/act/{name}/"' in page and f">{label}</button>" in page}


# The copy


def test_a_copy_is_a_new_draft_with_every_factor_of_its_source_and_says_who_made_it(roofing, django_user_model):
    active = active_of(roofing)
    staff = django_user_model.objects.create_user("alice", is_staff=True)

    draft = scoring_model_draft_copy(model=active, by=staff)

    draft.refresh_from_db()
    assert (draft.trade_id, draft.version, draft.status, draft.storm_window_days) == (roofing.pk, 3, Status.DRAFT, 60)
    assert draft.activated_at is None
    assert draft.notes.startswith("Copied from v2 by alice on ")
    assert draft.notes.endswith(".\n\nHail weighs more")
    assert len(factor_rows(draft)) == len(FACTORS) == 3
    assert factor_rows(draft) == factor_rows(active)
    # The source is untouched, and the copy's factors are rows of their own.
    assert active_of(roofing).pk == active.pk
    assert not set(draft.factors.values_list("pk", flat=True)) & set(active.factors.values_list("pk", flat=True))


def test_a_copy_is_numbered_after_the_trades_last_version_whatever_it_copies(roofing):
    retired = ScoringModel.objects.get(trade=roofing, version=1)

    first = scoring_model_draft_copy(model=retired)
    second = scoring_model_draft_copy(model=first)

    assert (first.version, second.version) == (3, 4)
    assert first.notes.startswith("Copied from v1 on ")
    assert factor_rows(second) == factor_rows(retired)
    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "retired", 2: "active", 3: "draft", 4: "draft",
    }  # fmt: skip


def test_a_copy_of_an_edited_draft_can_be_edited_and_activated_alone(roofing):
    draft = scoring_model_draft_copy(model=active_of(roofing))
    Factor.objects.filter(model=draft, feature="hail_inches").update(weight=45)

    activated = scoring_model_activate(model=draft)

    assert activated.status == Status.ACTIVE
    assert list(activated.factors.order_by("position").values_list("weight", flat=True)) == [50, 45, 20]
    assert ScoringModel.objects.get(trade=roofing, version=2).factors.get(feature="hail_inches").weight == 30


@pytest.mark.django_db(transaction=True)
def test_copies_made_at_the_same_moment_get_distinct_versions():
    trade = Trade.objects.create(slug="gutters", name="Gutters")
    active = model_version(trade, 1)

    drafts, errors = race(lambda _: scoring_model_draft_copy(model=active), range(4))

    assert errors == []
    assert sorted(draft.version for draft in drafts) == [2, 3, 4, 5]
    for draft in drafts:
        assert factor_rows(draft) == factor_rows(active)


def test_the_database_refuses_two_versions_with_one_number(roofing):
    with pytest.raises(IntegrityError, match="scoring_scoringmodel_version_unique"), transaction.atomic():
        ScoringModel.objects.create(trade=roofing, version=2)


# The status rules, shared by the services and the page's buttons


def test_each_status_offers_exactly_the_changes_its_services_accept(staff_client, roofing):
    retired = ScoringModel.objects.get(trade=roofing, version=1)
    active = active_of(roofing)
    draft = scoring_model_draft_copy(model=active)
    challenger = scoring_model_challenge(model=scoring_model_draft_copy(model=active), share=0.2)

    assert offered(staff_client, draft) == {"activate", "challenge", "new_draft"}
    assert offered(staff_client, challenger) == {"promote", "end_challenge", "new_draft"}
    assert offered(staff_client, active) == {"new_draft"}
    assert offered(staff_client, retired) == {"activate", "new_draft"}
    # What is not offered, the services refuse, and nothing changes.
    for model in (active, retired, draft):
        with pytest.raises(ChallengeError, match="is not a challenger"):
            scoring_model_promote(model=model)
        with pytest.raises(ChallengeError, match="is not a challenger"):
            scoring_model_challenge_end(model=model)
    for model in (active, retired, challenger):
        with pytest.raises(ChallengeError, match="only a draft can become a challenger"):
            scoring_model_challenge(model=model, share=0.3)
    assert dict(ScoringModel.objects.filter(trade=roofing).values_list("version", "status")) == {
        1: "retired", 2: "active", 3: "draft", 4: "challenger",
    }  # fmt: skip


def test_a_stale_button_is_refused_and_says_why(staff_client, roofing):
    draft = scoring_model_draft_copy(model=active_of(roofing))
    scoring_model_challenge(model=draft, share=0.2)  # another user made it the challenger meanwhile

    response = staff_client.post(f"{CHANGELIST}{draft.pk}/act/challenge/", follow=True)

    [(level, text)] = messages_of(response)  # worded by the page's buttons (core.admin.ObjectActionsAdmin)
    assert (level, "Roofing v3 (Challenger)" in text) == ("error", True)
    assert ScoringModel.objects.get(pk=draft.pk).challenger_share == 0.2


def test_a_draft_is_run_as_challenger_from_its_page_with_the_share_asked_first(staff_client, roofing):
    draft = scoring_model_draft_copy(model=active_of(roofing))
    url = f"{CHANGELIST}{draft.pk}/act/challenge/"

    form = staff_client.post(url)
    assert 'name="share"' in form.content.decode()
    assert ScoringModel.objects.get(pk=draft.pk).status == Status.DRAFT
    response = staff_client.post(
        url, {"action": "challenge", "_selected_action": [draft.pk], "apply": "yes", "share": "0.3"}, follow=True
    )

    assert response.redirect_chain[-1][0] == change_page(draft)
    assert ("success", "Roofing v3 is now the challenger on 30%.") in messages_of(response)
    draft.refresh_from_db()
    assert (draft.status, draft.challenger_share) == (Status.CHALLENGER, 0.3)


# Frozen versions


@pytest.mark.parametrize("version", [1, 2])  # retired, active
def test_a_frozen_versions_page_has_no_save_no_delete_and_no_editable_factor(staff_client, roofing, version):
    model = ScoringModel.objects.get(trade=roofing, version=version)

    page = page_of(staff_client.get(change_page(model)))

    assert 'name="_save"' not in page
    assert 'name="_continue"' not in page
    assert "deletelink" not in page
    assert 'name="storm_window_days"' not in page
    assert 'name="factors-0-weight"' not in page
    assert "Roof is {value:.0f} years old" in page  # its factors are shown, read-only
    assert "New draft from this version" in page


def test_a_challengers_page_is_read_only_too(staff_client, roofing):
    challenger = scoring_model_challenge(model=scoring_model_draft_copy(model=active_of(roofing)), share=0.2)

    page = page_of(staff_client.get(change_page(challenger)))

    assert ('name="_save"' in page, "deletelink" in page, 'name="factors-0-weight"' in page) == (False, False, False)


def test_a_drafts_page_stays_editable(staff_client, roofing):
    draft = scoring_model_draft_copy(model=active_of(roofing))

    page = page_of(staff_client.get(change_page(draft)))

    assert 'name="_save"' in page
    assert "deletelink" in page
    assert 'name="factors-0-weight"' in page


def test_a_change_or_delete_posted_to_a_frozen_version_is_refused_and_nothing_changes(staff_client, roofing):
    active = active_of(roofing)
    factor = active.factors.get(position=0)
    form = {
        "trade": roofing.pk, "version": 2, "notes": "edited", "storm_window_days": 10,
        "factors-TOTAL_FORMS": 1, "factors-INITIAL_FORMS": 1, "factors-MIN_NUM_FORMS": 0, "factors-MAX_NUM_FORMS": 1000,
        "factors-0-id": factor.pk, "factors-0-model": active.pk, "factors-0-position": 0,
        "factors-0-feature": "roof_age", "factors-0-transform": "ramp", "factors-0-params": '{"low": 10, "high": 30}',
        "factors-0-weight": 99,
    }  # fmt: skip

    assert staff_client.post(change_page(active), form).status_code == 403
    assert staff_client.post(f"{CHANGELIST}{active.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [active.pk], "post": "yes"}
    assert staff_client.post(CHANGELIST, bulk).status_code == 403

    active.refresh_from_db()
    assert (active.status, active.notes, active.storm_window_days) == (Status.ACTIVE, "Hail weighs more", 60)
    assert list(active.factors.order_by("position").values_list("weight", flat=True)) == [50, 30, 20]


def test_the_database_refuses_a_change_to_a_frozen_versions_factors(roofing):
    active = active_of(roofing)

    with pytest.raises(IntegrityError, match="its factors are frozen"), transaction.atomic():
        Factor.objects.filter(model=active, position=0).update(weight=99)
    with pytest.raises(IntegrityError, match="only its notes and status"), transaction.atomic():
        ScoringModel.objects.filter(pk=active.pk).update(storm_window_days=10)

    assert active.factors.get(position=0).weight == 50


# "New draft from this version" on the page


def test_new_draft_from_a_versions_page_opens_the_copy_and_records_who_made_it(staff_client, roofing):
    active = active_of(roofing)

    response = staff_client.post(f"{CHANGELIST}{active.pk}/act/new_draft/", follow=True)

    draft = ScoringModel.objects.get(trade=roofing, version=3)
    assert response.redirect_chain[-1][0] == change_page(draft)
    assert ("success", "Roofing v3 is a new draft copied from v2.") in messages_of(response)
    assert (draft.status, factor_rows(draft)) == (Status.DRAFT, factor_rows(active))
    assert draft.notes.startswith("Copied from v2 by staff on ")
    entry = LogEntry.objects.get(object_id=str(draft.pk), action_flag=ADDITION)
    assert (entry.user.username, entry.get_change_message()) == ("staff", "Copied from v2.")
    assert 'name="_save"' in page_of(response)


def test_new_draft_from_several_selected_versions_copies_each(staff_client, roofing):
    versions = list(ScoringModel.objects.filter(trade=roofing).order_by("version"))

    response = staff_client.post(
        CHANGELIST, {"action": "new_draft", "_selected_action": [m.pk for m in versions]}, follow=True
    )

    assert messages_of(response) == [
        ("success", "Roofing v3 is a new draft copied from v1."),
        ("success", "Roofing v4 is a new draft copied from v2."),
    ]
    copies = ScoringModel.objects.filter(trade=roofing, version__in=[3, 4]).order_by("version")
    assert [factor_rows(copy) for copy in copies] == [factor_rows(source) for source in versions]


def test_a_user_who_may_only_view_gets_no_new_draft_button_and_cannot_post_one(client, roofing, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_scoringmodel"))
    client.force_login(viewer)
    active = active_of(roofing)

    assert offered(client, active) == set()
    assert client.post(f"{CHANGELIST}{active.pk}/act/new_draft/").status_code == 403
    assert ScoringModel.objects.filter(trade=roofing).count() == 2


# A draft's differences from the active version


def test_the_differences_list_factors_added_removed_and_changed_and_version_fields(roofing):
    draft = scoring_model_draft_copy(model=active_of(roofing))
    ScoringModel.objects.filter(pk=draft.pk).update(storm_window_days=30)
    Factor.objects.filter(model=draft, feature="hail_inches").update(weight=45, reason="Hail of {value:.1f} in")
    Factor.objects.filter(model=draft, feature="roof_age").update(params={"low": 15, "high": 30})
    Factor.objects.filter(model=draft, feature="days_since_hail").delete()
    Factor.objects.create(model=draft, position=3, feature="owner_occupied", transform="flag", weight=5)
    draft.refresh_from_db()

    differences = scoring_model_differences(model=draft)

    assert differences.active == active_of(roofing)
    assert [(c.name, c.old, c.new) for c in differences.fields] == [("Storm window days", 60, 30)]
    assert [
        (d.kind, d.factor.feature, [(c.name, c.old_text, c.new_text) for c in d.changes]) for d in differences.factors
    ] == [
        ("changed", "roof_age", [("Params", '{"high": 30, "low": 10}', '{"high": 30, "low": 15}')]),
        ("changed", "hail_inches", [
            ("Weight", "30", "45"),
            ("Reason", "{value:.2f} in hail {hail_where} on {hail_date}", "Hail of {value:.1f} in"),
        ]),
        ("added", "owner_occupied", []),
        ("removed", "days_since_hail", []),
    ]  # fmt: skip
    assert differences.factors[3].factor.model_id == differences.active.pk


def test_an_unchanged_copy_has_no_differences(roofing):
    differences = scoring_model_differences(model=scoring_model_draft_copy(model=active_of(roofing)))

    assert (differences.unchanged, differences.fields, differences.factors) == (True, [], [])


def test_a_draft_of_a_trade_without_an_active_version_says_so(staff_client, roofing):
    trade = Trade.objects.create(slug="gutters", name="Gutters")
    draft = ScoringModel.objects.create(trade=trade, version=1)

    differences = scoring_model_differences(model=draft)

    assert (differences.active, differences.unchanged) == (None, False)
    assert "No active version" in page_of(staff_client.get(change_page(draft)))


def test_the_drafts_page_and_preview_show_its_differences_and_a_frozen_page_does_not(staff_client, roofing):
    active = active_of(roofing)
    draft = scoring_model_draft_copy(model=active)
    Factor.objects.filter(model=draft, feature="hail_inches").update(weight=45)

    page = page_of(staff_client.get(change_page(draft)))
    preview = page_of(staff_client.get(f"{CHANGELIST}{draft.pk}/preview/"))

    for shown in (page, preview):
        assert "Differences from the active version" in shown
        row = '<tr class="difference-changed"><td>Largest recent hail over the property (inches)</td><td>changed</td>'
        assert row + "<td>Weight</td><td>30</td><td>45</td></tr>" in shown
    assert "Differences from the active version" not in page_of(staff_client.get(change_page(active)))
