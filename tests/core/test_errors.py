"""Domain errors of every app share core.errors.DomainError, and the API renders any of them by its code,
status and extra fields (core/api/errors.py), knowing no app."""

import ast
from pathlib import Path

import pytest

from contractors.errors import ApiKeyRejected, ContractorError, WebhookTargetRefused
from core.api.errors import api_exception_handler
from core.errors import DomainError
from demo.guard import DemoRefused
from demo.market import DemoMarketError
from leadengine.security import ACCOUNT, ADDRESS, LoginLocked
from leadengine.services.jobs import JobBusy, JobError
from leads.errors import LeadError, ReturnRefused, SuppressionImportError
from scoring.errors import ImportFileError, ScoringError, ScoringRunBusy, ScoringRunInterrupted
from territories.errors import Conflict, TerritoryError, TerritoryTaken, WaitlistError

CORE = Path(__file__).resolve().parents[2] / "core"
APPS = ("contractors", "demo", "leadengine", "leads", "scoring", "territories")


class SpecialOffer(DomainError):
    code = "special_offer"

    def body_extra(self) -> dict:
        return {"offers": [1, 2]}


def rendered(error: Exception) -> tuple[int, dict]:
    response = api_exception_handler(error, {})
    return response.status_code, response.data


@pytest.mark.parametrize(
    "error_class",
    [LeadError, TerritoryError, WaitlistError, ContractorError, WebhookTargetRefused, ApiKeyRejected, JobError,
     ScoringError, ScoringRunBusy, ScoringRunInterrupted, ImportFileError, DemoRefused, DemoMarketError],
)  # fmt: skip
def test_every_app_s_domain_errors_derive_from_the_one_base(error_class):
    assert issubclass(error_class, DomainError)


def test_codes_and_statuses_are_those_the_errors_always_had():
    errors = (LeadError, ReturnRefused, TerritoryError, WaitlistError, JobError, ContractorError, ApiKeyRejected)
    assert [(e.code, e.http_status) for e in errors] == [
        ("lead_error", 400), ("return_refused", 422), ("territory_error", 400), ("waitlist_error", 409),
        ("job_error", 400), ("contractor_error", 409), ("invalid_api_key", 401),
    ]  # fmt: skip
    assert issubclass(JobBusy, JobError)
    assert JobBusy.code == "job_busy"


def test_any_domain_error_is_rendered_by_its_code_status_and_extra_fields():
    assert rendered(ScoringRunBusy("another scoring run of Roofing is running")) == (
        409, {"code": "scoring_run_busy", "detail": "another scoring run of Roofing is running", "fields": {}}
    )  # fmt: skip
    assert rendered(ImportFileError("the file is empty")) == (
        422, {"code": "import_file_invalid", "detail": "the file is empty", "fields": {}}
    )  # fmt: skip
    assert rendered(SpecialOffer("Two offers.")) == (
        409, {"code": "special_offer", "detail": "Two offers.", "fields": {}, "offers": [1, 2]}
    )  # fmt: skip


def test_an_error_may_set_its_code_and_status_per_instance():
    error = DomainError("Slow down.", code="slow_down", http_status=429)

    assert rendered(error) == (429, {"code": "slow_down", "detail": "Slow down.", "fields": {}})
    assert (DomainError.code, DomainError.http_status) == ("domain_error", 409)
    assert [LoginLocked(ACCOUNT, 3).code, LoginLocked(ADDRESS, 1).code] == ["locked_account", "locked_address"]
    assert rendered(LoginLocked(ACCOUNT, 1)) == (
        429, {"code": "locked_account", "detail": "Too many failed logins for this account. Try again in 1 minute.",
              "fields": {}}
    )  # fmt: skip


def test_a_taken_territory_tells_the_api_the_zips_and_staff_the_holders():
    error = TerritoryTaken(
        trade_name="Roofing",
        conflicts=[Conflict("80203", 7, "Summit Roofing"), Conflict("80202", 8, "Peak", offered_until=None)],
    )

    assert str(error) == (
        "Roofing territory already taken: 80202 (owned by Peak), 80203 (owned by Summit Roofing). Nothing was claimed."
    )
    assert rendered(error) == (
        409,
        {
            "code": "territory_taken",
            "detail": "Roofing territory already taken: 80202, 80203. Nothing was claimed.",
            "fields": {},
            "conflicts": [{"zip_code": "80202", "held_as": "owned"}, {"zip_code": "80203", "held_as": "owned"}],
        },
    )


def test_an_error_with_details_keeps_its_message():
    error = SuppressionImportError([(2, "not an email"), (5, "empty")])

    assert rendered(error) == (
        422,
        {
            "code": "suppression_file_invalid",
            "detail": "2 bad row(s), nothing imported: line 2: not an email; line 5: empty.",
            "fields": {},
        },
    )


def test_core_imports_no_app():
    imported = set()
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)

    assert imported.isdisjoint(APPS), imported & set(APPS)
