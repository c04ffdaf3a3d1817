"""Background jobs: staff (or a schedule) ask for a run of a job for a trade; a Celery worker executes it.

A run is recorded before it is queued (status queued), so its id can be returned at once and its
status read while it waits, runs and ends. At most one run of a job per trade is active (queued or
running): the database refuses a second (JobRun's unique constraint). The worker holds a PostgreSQL
advisory lock on the job and trade while it runs, so a redelivered task (a worker died mid-run and
Celery handed the task to another) never runs beside a live copy, and a run whose lock is free while
it says "running" has lost its worker.

A broker that refuses the task leaves the run queued and unsent (logged): the recovery sweep
(leadengine/services/recovery.py) sends it once the broker is back, and takes over runs whose message
was lost or whose worker died. A lost database connection is ridden out (core/retry.py): the
run's records are written again, and the work of the jobs that are safe to repeat is done again, on a
new connection that takes the run's lock again first.

Some runs wait rather than work (JobRun.waiting, StepWaits): a scoring job sends its run's partitions to
the workers and ends when that run closes; a nightly run starts its chains and ends when they do
(leadengine/services/chains.py). A waiting run is running, holds no lock and no worker, and is neither
abandoned nor taken over: what it waits for ends it, and the recovery sweep moves it on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from contractors.services.notices import contractor_notices_send
from core import locks
from core.errors import DomainError
from core.logs import log_context_bound
from core.retry import db_retry
from leadengine import flows  # the steps of the nightly run that the jobs run one at a time
from leadengine.models import JobRun
from leadengine.services.monitoring import daily_report_send, overdue_check
from leads.services.digest import leads_email_digest
from leads.services.lifecycle import leads_expire
from leads.services.quality import models_evaluate
from leads.services.statements import months_close
from leads.services.webhooks import leads_webhook_deliver
from scoring.models import Trade
from scoring.services import runs
from territories.services.waitlist import promotions_given

Job, Status = JobRun.Job, JobRun.Status
log = logging.getLogger(__name__)


class JobError(DomainError):
    code = "job_error"
    http_status = 400


class JobBusy(JobError):
    """A run of the job for the trade is already waiting or running."""

    code = "job_busy"
    http_status = 409

    def __init__(self, run: JobRun):
        self.run = run
        scope = f" for {run.trade.name}" if run.trade_id else ""  # type: ignore[union-attr]  # trade_id: a trade
        super().__init__(
            f"{run.get_job_display()}{scope} is already {run.get_status_display().lower()} "
            f"(run {run.pk}); wait for it to end."
        )


class RunTakenOver(Exception):
    """Another copy of the run holds its lock: this copy lost its connection (and the lock with it) and the
    recovery sweep handed the run to another worker. This copy stops and records nothing."""


class StepWaits(Exception):
    """The job's work goes on elsewhere (a scoring run's partitions on the workers, a nightly run's chains):
    its run stays running, marked waiting, without holding this worker, and ends when that work does
    (leadengine/services/chains.py). `counts` is what it recorded so far."""

    def __init__(self, *, counts: dict[str, Any]):
        super().__init__("the run waits for its work to end elsewhere")
        self.counts = counts


class JobFailed(Exception):
    """The job's service reported a failure (rather than raising one); `counts` is what it did anyway."""

    def __init__(self, message: str, *, counts: dict[str, Any]):
        super().__init__(message)
        self.counts = counts


def _score(job_run: JobRun) -> dict[str, Any]:
    """Open the trade's scoring run and send its partitions to the workers (runs.scoring_run_dispatch), as
    `score --distributed` does; the job's run then waits (StepWaits) and ends when the scoring run closes
    (chains.scoring_step_settle). A run taken up again (its task redelivered, or requeued by the sweep) that
    has its scoring run already waits for it rather than starting another."""
    if job_run.scoring_run_id is not None:
        raise StepWaits(counts={"scoring_run": job_run.scoring_run_id})
    assert job_run.trade is not None  # job_trade_check: scoring runs per trade
    run = runs.scoring_run_start(trade=job_run.trade, distributed=True)
    # Linked before the partitions go out, so the run's close (however soon) finds the job's run waiting for it.
    JobRun.objects.filter(pk=job_run.pk).update(scoring_run=run)
    job_run.scoring_run = run
    runs.scoring_run_dispatch(run=run)
    raise StepWaits(counts={"scoring_run": run.pk})


def _nightly(job_run: JobRun) -> dict[str, Any]:
    """Start a chain per trade with an active scoring model (read now); the run waits for them to end."""
    from leadengine.services.chains import nightly_chains_start

    raise StepWaits(counts=nightly_chains_start(nightly=job_run))


def _generate(trade: Trade) -> dict[str, Any]:
    made = flows.leads_make(trades=[trade])
    routed = made.routing
    counts: dict[str, int | None] = {
        "leads_generated": made.created,
        "leads_routed": routed.assigned,
        "leads_in_pool": routed.waiting,
    }
    if made.webhooks.asked:
        counts["webhook_run"] = made.webhooks.run_id
    return counts


def _expire_leads(trade: None) -> dict[str, Any]:
    expired = leads_expire()
    return {"unassigned_expired": expired.unassigned, "unaccepted_expired": expired.unaccepted}


def _expire_offers(trade: None) -> dict[str, Any]:
    offers = flows.waitlist_offers_expire()
    given = len(promotions_given(offers.result.promotions))
    return {"offers_expired": offers.result.expired, "territories_given": given,
            "leads_routed": offers.routing.assigned}  # fmt: skip


def _deliver_webhooks(trade: None) -> dict[str, Any]:
    sent = leads_webhook_deliver()
    # The contractors' other events (waitlist offers, withdrawn leads), webhooks and the emails still due.
    told = contractor_notices_send()
    return {"delivered": sent.delivered, "retried": sent.retried, "gave_up": sent.gave_up, "refused": sent.refused,
            "notices_delivered": told.delivered, "notices_retried": told.retried, "notices_gave_up": told.gave_up,
            "notices_refused": told.refused}  # fmt: skip


def _email_digest(trade: None) -> dict[str, Any]:
    sent = leads_email_digest()
    counts = {"contractors_emailed": sent.contractors_emailed, "delivered": sent.leads_delivered,
              "contractors_failed": sent.contractors_failed}  # fmt: skip
    if sent.contractors_failed:
        raise JobFailed(f"{sent}: the mail server refused (see the worker's log).", counts=counts)
    return counts


def _urgent_email(trade: None) -> dict[str, Any]:
    # Pass after pass until one sends nothing: urgent leads routed while a pass was sending do not wait for the
    # next request (the recovery sweep asks for a run when urgent leads have waited over a minute).
    emailed = delivered = 0
    while True:
        sent = leads_email_digest(urgent_only=True)
        emailed, delivered = emailed + sent.contractors_emailed, delivered + sent.leads_delivered
        if not sent.leads_delivered:
            break
    failed = sent.contractors_failed  # the last pass: those still refused
    counts = {"contractors_emailed": emailed, "delivered": delivered, "contractors_failed": failed}
    if failed:
        raise JobFailed(f"{failed} urgent emails refused by the mail server (see the worker's log).", counts=counts)
    return counts


def _daily_report(trade: None) -> dict[str, Any]:
    return daily_report_send()


def _month_close(trade: None) -> dict[str, Any]:
    closed = months_close()
    return {"statements": closed.statements, "territory_fees": str(closed.fees)}


def _evaluate(trade: None) -> dict[str, Any]:
    runs = models_evaluate()
    return {"evaluations": len(runs), "outcomes": sum(run.outcomes for run in runs)}


def _overdue_check(trade: None) -> dict[str, Any]:
    from leadengine.services.recovery import jobs_recover

    # The check also recovers what the sweep would (its schedule may be disabled): the same rules, under
    # the same row locks, so the two never disagree. Its own run holds its lock, so it is never taken over.
    recovered = jobs_recover()
    return {**overdue_check(), "abandoned_closed": recovered["failed"], "requeued": recovered["requeued"]}


@dataclass(frozen=True)
class JobSpec:
    run: (
        Callable[[Trade], dict[str, Any]] | Callable[[None], dict[str, Any]] | Callable[[JobRun], dict[str, Any]]
    )  # the work, given its trade (None: every trade), or its run (takes_run), returning its counts
    # The work may be done again after losing the database mid-way (idempotent steps, no email sent
    # twice): it is retried on a new connection for DB_RETRY_SECONDS, otherwise the run fails at once.
    repeatable: bool = False
    takes_run: bool = False  # the work is given its JobRun (it links other runs to it) rather than its trade


# Which jobs run per trade is JobRun.PER_TRADE (the model's check constraint holds it too). Scoring has
# its own partition retries and recovery (scoring.services.runs); the emails are not sent twice.
JOBS: dict[str, JobSpec] = {
    Job.SCORING: JobSpec(run=_score, takes_run=True),
    Job.LEAD_GENERATION: JobSpec(run=_generate, repeatable=True),
    Job.LEAD_EXPIRY: JobSpec(run=_expire_leads, repeatable=True),
    Job.OFFER_EXPIRY: JobSpec(run=_expire_offers, repeatable=True),
    Job.WEBHOOK_DELIVERY: JobSpec(run=_deliver_webhooks, repeatable=True),
    Job.EMAIL_DIGEST: JobSpec(run=_email_digest),
    Job.URGENT_EMAIL: JobSpec(run=_urgent_email),
    Job.DAILY_REPORT: JobSpec(run=_daily_report),
    Job.OVERDUE_CHECK: JobSpec(run=_overdue_check),
    # Its runs are written in one transaction: after a lost connection, none was, and all are again.
    Job.EVALUATION: JobSpec(run=_evaluate, repeatable=True),
    Job.NIGHTLY_RUN: JobSpec(run=_nightly, takes_run=True),
    # Each contractor's month closes in a transaction of its own, and a closed month is not closed again.
    Job.MONTH_CLOSE: JobSpec(run=_month_close, repeatable=True),
}


def job_trade_check(*, job: str, trade: Trade | None) -> None:
    """JobError unless `job` is known and given a trade exactly when it runs per trade."""
    if job not in JOBS:
        raise JobError(f"Unknown job {job!r}; one of: {', '.join(JOBS)}.")
    label = JobRun.Job(job).label
    if job in JobRun.PER_TRADE and trade is None:
        raise JobError(f"{label} runs per trade: name the trade.")
    if job not in JobRun.PER_TRADE and trade is not None:
        raise JobError(f"{label} covers every trade: name no trade.")


def _lock_key(run: JobRun) -> int:
    """The second key of the run's lock (locks.JOB_RUN), one per job and trade: a number drawn from the job's
    name (never its place in Job, which moves when a job is added), below 2,147, in millions, plus the trade
    id (0: every trade; trade ids stay far below a million), so at most 2,146,999,999: an int4. The tests pin
    the keys and check that no two jobs draw the same number."""
    return locks.name_number(run.job, below=2_147) * 1_000_000 + (run.trade_id or 0)


def _lock_try(run: JobRun) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [locks.JOB_RUN, _lock_key(run)])
        return cursor.fetchone()[0]  # type: ignore[no-any-return]  # PostgreSQL's boolean


def _lock_release(run: JobRun) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [locks.JOB_RUN, _lock_key(run)])


# The run's lock as pg_locks shows it: a lock on two int4 keys is (classid, objid) with objsubid 2, in this
# database (advisory locks are per database).
_LOCK_ROWS = """
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND classid::int8 = %s AND objid::int8 = %s AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _lock_held(run: JobRun) -> bool:
    """Whether a live session (this one included: a run executing here) holds the run's lock. Asking takes
    no lock, so a live worker's copy trying for it at that moment is never turned away."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS ({_LOCK_ROWS})", [locks.JOB_RUN, _lock_key(run)])
        return cursor.fetchone()[0]  # type: ignore[no-any-return]  # PostgreSQL's boolean


def _lock_take(run: JobRun) -> bool:
    """The run's lock for this session: True when it already held it or has taken it (once: never a second
    hold to release), False when another session holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS ({_LOCK_ROWS} AND pid = pg_backend_pid())", [locks.JOB_RUN, _lock_key(run)])
        if cursor.fetchone()[0]:
            return True
    return _lock_try(run)


def _lock_keep(run: JobRun) -> None:
    """Before writing for the run: this session holds its lock, taken again if the connection was lost and
    opened anew since; RunTakenOver when another copy took the run meanwhile."""
    if not _lock_take(run):
        raise RunTakenOver(f"job run {run.pk} is running elsewhere")


def _lock_let_go(run: JobRun) -> None:
    """Release the run's lock; a connection already lost took the lock with it."""
    try:
        _lock_release(run)
    except DatabaseError:
        log.info("job run %s: its lock went with its lost connection", run.pk)


def _abandoned_close(*, job: str, trade: Trade | int | None, now: dt.datetime) -> JobRun | None:
    """Close the active run of job and trade that can no longer end by itself, as a new request for the job
    replaces it: running without its worker (its lock is free), or queued with no worker taking it for
    JOB_QUEUE_TIMEOUT_MINUTES since its task was sent (or since it was queued, if it never was). Returns
    the run it closed."""
    active = JobRun.objects.select_for_update().filter(job=job, trade=trade, status__in=JobRun.ACTIVE).first()
    if active is None:
        return None
    if active.status == Status.RUNNING and not active.waiting and not _lock_held(active):
        error = "Abandoned: the worker running it stopped."
    elif (
        active.status == Status.QUEUED
        and not _lock_held(active)
        and now - (active.sent_at or active.queued_at) > dt.timedelta(minutes=settings.JOB_QUEUE_TIMEOUT_MINUTES)
    ):
        error = f"Never started: no worker took it within {settings.JOB_QUEUE_TIMEOUT_MINUTES} minutes."
    else:
        return None
    active.status, active.finished_at, active.error = Status.FAILED, now, error
    active.save(update_fields=["status", "finished_at", "error"])
    return active


def _run_record(*, job: str, trade: Trade | None, user: User | None = None, chain: JobRun | None = None) -> JobRun:
    """A new queued run of `job` for `trade`, once an abandoned one is closed; JobBusy naming the run that
    is queued or running (the unique constraint decides, whatever process asks)."""
    job_trade_check(job=job, trade=trade)
    now = timezone.now()
    try:
        with transaction.atomic():
            _abandoned_close(job=job, trade=trade, now=now)
            return JobRun.objects.create(
                job=job, trade=trade, requested_by=user if user and user.is_authenticated else None, queued_at=now,
                chain=chain,
            )  # fmt: skip
    except IntegrityError:
        active = JobRun.objects.select_related("trade").filter(job=job, trade=trade, status__in=JobRun.ACTIVE).first()
        if active is None:  # it ended between the insert and this read: the caller may simply ask again
            raise JobError("The previous run just ended; ask again.") from None
        raise JobBusy(active) from None


def job_run_send(*, run_id: int) -> bool:
    """Hand the run's task to the broker and note when (sent_at); False when the broker refused it (logged):
    the run stays queued, unsent, and the recovery sweep sends it once the broker is back."""
    from leadengine.tasks import job_run as job_run_task

    try:
        job_run_task.delay(run_id)
    except Exception as error:  # whatever the broker's client raises, the run is kept for the sweep
        log.warning("job run %s is queued but not sent (the broker refused it: %s); it is sent later", run_id, error)
        return False
    try:
        JobRun.objects.filter(pk=run_id).update(sent_at=timezone.now())
    except DatabaseError as error:  # the sweep may send it again: a second copy is a no-op
        log.warning("job run %s was sent, but its send time was not recorded: %s", run_id, error)
    return True


def job_run_request(
    *, job: str, trade: Trade | None = None, user: User | None = None, chain: JobRun | None = None
) -> JobRun:
    """Record a run of `job` for `trade` (None: a job of every trade), a step of the nightly run `chain` if
    given, and queue it on Celery once this commits; JobBusy (naming the run) when one is already waiting or
    running. A broker that is down does not refuse the run: it is recorded queued and sent later
    (job_run_send)."""
    with transaction.atomic():
        run = _run_record(job=job, trade=trade, user=user, chain=chain)
        transaction.on_commit(lambda: job_run_send(run_id=run.pk))
    return run


def _scheduled_record(*, job: str, trade: Trade | None, task_id: str) -> JobRun:
    """The run of a scheduled task: the one it recorded already (the task is redelivered or retried), a new
    one, or a skipped one when a run of the job for the trade is already queued or running."""
    if task_id and (done := JobRun.objects.filter(task_id=task_id).order_by("pk").first()) is not None:
        return done
    try:
        with transaction.atomic():
            run = _run_record(job=job, trade=trade)
            if task_id:
                run.task_id = task_id
                run.save(update_fields=["task_id"])
            return run
    except JobError as refused:
        now = timezone.now()
        reason = (
            f"Run {refused.run.pk} of the job was still under way." if isinstance(refused, JobBusy) else str(refused)
        )
        return JobRun.objects.create(
            job=job, trade=trade, status=Status.SKIPPED, queued_at=now, started_at=now, finished_at=now, error=reason,
            task_id=task_id,
        )  # fmt: skip


def job_run_scheduled(*, job: str, trade: Trade | None = None, task_id: str = "") -> JobRun:
    """A run a schedule started (beat): recorded and executed here, in the worker that took the task
    `task_id`. When a run of the job for the trade is already queued or running, a skipped run says so and
    nothing else happens. The same task delivered again (a dead worker's, or a retry) finds its run: an
    ended one is left as it is, an active one is executed (once: its lock decides)."""
    job_trade_check(job=job, trade=trade)  # a schedule naming the wrong trade fails, as it should be fixed
    run = db_retry(
        lambda: _scheduled_record(job=job, trade=trade, task_id=task_id), what=f"recording a scheduled {job} run"
    )
    if run.status not in JobRun.ACTIVE:
        return run
    return job_run_execute(run_id=run.pk)


def job_failure_notify(*, run: JobRun) -> None:
    """Email the failed run to OPS_EMAILS (nobody when the list is empty). A mail server that refuses is
    logged, never a second failure of the job."""
    if not settings.OPS_EMAILS:
        return
    subject = f"LeadEngine: {run.get_job_display().lower()} failed (run {run.pk})"
    scope = f" for {run.trade.name}" if run.trade_id else ""  # type: ignore[union-attr]  # trade_id: a trade
    body = (
        f"{run.get_job_display()}{scope}, run {run.pk}, "
        + (
            f"started {run.started_at:%Y-%m-%d %H:%M:%S %Z}"
            if run.started_at
            else f"queued {run.queued_at:%Y-%m-%d %H:%M:%S %Z}"
        )
        + f":\n\n{run.error}\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.OPS_EMAILS)
    except OSError:
        log.exception("could not email the failure of job run %s", run.pk)


def _dashboard_refresh(run: JobRun) -> None:
    """The dashboard's cached figures that the run changed are computed again (even after a failure, which
    may have done part of its work). The dashboard is a view of the work: failing to refresh it is logged,
    never a failure of the run."""
    from leadengine.dashboard import dashboard_refresh

    try:
        dashboard_refresh(job=run.job, counts=run.counts if run.status == Status.SUCCEEDED else None)
    except Exception:
        log.exception("the dashboard's figures were not refreshed after job run %s", run.pk)


def _run_start(run_id: int) -> JobRun | None:
    """Mark the run running (this session holds its lock); None when it ended meanwhile."""
    with transaction.atomic():
        run = JobRun.objects.select_for_update(of=("self",)).select_related("trade").get(pk=run_id)
        if run.status not in JobRun.ACTIVE:
            return None
        _lock_keep(run)
        run.status, run.started_at, run.error = Status.RUNNING, timezone.now(), ""
        run.save(update_fields=["status", "started_at", "error"])
        return run


def _run_work(run: JobRun) -> dict[str, Any]:
    """The job's work, on a connection that holds the run's lock."""
    _lock_keep(run)
    spec = JOBS[run.job]
    # job_trade_check gave the run a trade exactly when its job runs per trade.
    return spec.run(run if spec.takes_run else run.trade)  # type: ignore[arg-type]


def _run_close(run: JobRun) -> None:
    """Write how the run ended, from this copy, which holds its lock (started_at too: the sweep may have put
    the run back in the queue while this copy had lost its connection)."""
    with transaction.atomic():
        _lock_keep(run)
        run.save(update_fields=["status", "started_at", "counts", "error", "finished_at", "waiting", "scoring_run"])


def job_run_execute(*, run_id: int) -> JobRun:
    """Run a queued run (the Celery task's body). A run that already ended is left as it is (a task
    delivered twice does the work once); one whose live copy holds the lock is skipped by this copy. Its
    records ride out a lost database connection (db_retry), and so does the work of a repeatable job; a
    longer outage fails the run with its error (or leaves it to the recovery sweep when even that cannot
    be written)."""
    what = f"job run {run_id}"
    with log_context_bound(job_run_id=run_id):  # every line logged meanwhile names the run (core/logs.py)
        run = db_retry(lambda: JobRun.objects.select_related("trade").get(pk=run_id), what=what)
        if run.status not in JobRun.ACTIVE or run.waiting:
            return run  # ended, or waiting for its work to end elsewhere: its end comes from there
        ran = _run_execute(run)
        _chain_follow(ran)
        return ran


def _chain_follow(run: JobRun) -> None:
    """After this copy recorded the run: a waiting run whose work already ended elsewhere is closed now, and
    a step's end moves its chain on. A failure here is logged: the recovery sweep does the same each minute."""
    from leadengine.services import chains

    try:
        if run.waiting:
            chains.waiting_run_check(run_id=run.pk)
        elif run.chain_id is not None and run.status not in JobRun.ACTIVE:
            chains.chain_advance(nightly_id=run.chain_id)
    except Exception:
        log.exception("job run %s: its chain was not moved on; the recovery sweep does it", run.pk)


def _run_execute(run: JobRun) -> JobRun:
    what = f"job run {run.pk}"
    run_id = run.pk
    if not db_retry(lambda: _lock_take(run), what=what):
        log.info("job run %s is running elsewhere; this copy stops", run.pk)
        return run
    try:
        try:
            started = db_retry(lambda: _run_start(run_id), what=what)
        except RunTakenOver:
            log.info("job run %s is running elsewhere; this copy stops", run.pk)
            return run
        if started is None:
            return JobRun.objects.select_related("trade").get(pk=run_id)
        run = started
        try:
            if JOBS[run.job].repeatable:
                counts = db_retry(lambda: _run_work(run), what=f"{what} ({run.job})")
            else:
                counts = _run_work(run)
        except RunTakenOver:
            log.warning("job run %s was taken over by another worker while this one had lost the database", run.pk)
            return run
        except StepWaits as waits:
            run.counts, run.waiting = waits.counts, True
        except Exception as error:  # any failure of the job is recorded on its run
            log.exception("job run %s failed", run.pk)
            run.status, run.error = Status.FAILED, f"{type(error).__name__}: {error}"
            run.counts = getattr(error, "counts", run.counts)
        else:
            run.status, run.counts = Status.SUCCEEDED, counts
        if not run.waiting:
            run.finished_at = timezone.now()
        try:
            db_retry(lambda: _run_close(run), what=what)
        except RunTakenOver:
            log.warning("job run %s was taken over by another worker; this copy's end is not recorded", run.pk)
            return run
        # One line per run that ends (or waits), with its job_run_id (job_run_execute), for the logs' readers.
        log.info(
            "job run %s (%s) %s", run.pk, run.job, "waits for its work" if run.waiting else run.status,
            extra={"job": run.job, "status": run.status, "counts": run.counts},
        )  # fmt: skip
        if run.status == Status.FAILED:
            job_failure_notify(run=run)
        if not run.waiting:
            _dashboard_refresh(run)
        return run
    finally:
        _lock_let_go(run)
