"""Domain errors of scoring (core.errors.DomainError). Each has a stable `code` and an `http_status` for
the API (409 unless it says otherwise); the admin and the commands show the message."""

from __future__ import annotations

from core.errors import DomainError


class ScoringError(DomainError):
    """A scoring run that cannot start or go on; the message says why."""

    code = "scoring_error"


class ScoringRunBusy(ScoringError):
    """Another run of the trade is under way."""

    code = "scoring_run_busy"


class ScoringRunInterrupted(ScoringError):
    """The database stayed unreachable for longer than DB_RETRY_SECONDS; the run is left running, and is
    closed as abandoned once it has been silent for SCORING_RUN_STALE_SECONDS."""

    code = "scoring_run_interrupted"
    http_status = 503


class ChallengeError(DomainError):
    """A challenger version that cannot start or end as asked; the message says why."""

    code = "challenge_refused"


class ImportFileError(DomainError):
    """The file cannot be imported at all (unreadable, wrong encoding, missing columns): nothing is written."""

    code = "import_file_invalid"
    http_status = 422
