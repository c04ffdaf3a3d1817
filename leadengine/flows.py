"""Use cases that cross apps, each written once here. Screens, commands, tasks and jobs call these; these
call the apps' services.

What runs every night, in this order (`daily_run`; `manage.py run_pipeline` and the demo's played days run
it whole in one process; the schedules run steps 1-2 as the nightly run's chain per trade, each step a job,
leadengine/services/chains.py, and lead and offer expiry hourly):
  1. score every trade with an active scoring model (scoring.services.runs.trade_score; job "scoring")
  2. generate each trade's leads, route them to the ZIPs' owners, and ask for a webhook delivery run when
     some went to contractors that take webhooks (`leads_make`; job "lead_generation")
  3. expire overdue leads (leads.services.lifecycle.leads_expire; job "lead_expiry")
  4. expire waitlist offers that ran out, and route the ZIPs given to the next in line
     (`waitlist_offers_expire`; job "offer_expiry")

Where a territory changes hands: `territories_claim` (and a contractor's own, `territories_claim_or_request`,
and `claim_request_approve`), `territories_transfer`, `territories_release`, `waitlist_offer_accept`,
`waitlist_leave`, `waitlist_offers_expire`. Each calls its territories service,
then routes the waiting leads of the ZIPs that got a new owner, and returns both (HandOver).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from contractors.models import Contractor
from core import locks
from core.progress import Progress, no_progress
from core.retry import db_retry
from leadengine.models import JobRun
from leadengine.services import jobs  # a module: its job functions call back into this one
from leads.selectors import leads_to_post_exist, urgent_leads_to_email_exist
from leads.services.generation import GenerationSummary, leads_generate, leads_generate_all
from leads.services.lifecycle import ExpirySummary, leads_expire
from leads.services.routing import RoutingSummary, leads_route, leads_route_territories
from scoring.errors import ScoringError
from scoring.models import ImportRun, ScoringRun, Trade
from scoring.selectors import (
    properties_changed_by,
    properties_zip_codes,
    trades_reading_storms,
    trades_with_active_model,
)
from scoring.services import runs
from territories.errors import SelfServiceLimitReached
from territories.models import ClaimRequest, Territory, WaitlistEntry
from territories.services import claims, ownership, requests, waitlist
from territories.services.ownership import Released
from territories.services.waitlist import OffersExpired, Promotion, promotions_given

T = TypeVar("T")
log = logging.getLogger(__name__)


# --- A territory changes hands ------------------------------------------------------------------------


@dataclass(frozen=True)
class HandOver(Generic[T]):
    """A change of hands: what the territories service returned, and the routing of the waiting leads of
    the ZIPs that got a new owner (nothing assigned when none did)."""

    result: T
    routing: RoutingSummary


def territories_claim(
    *,
    contractor: Contractor,
    trade: Trade,
    zip_codes: Iterable[str],
    claimed_by: User | None = None,
    note: str = "",
    self_service_limit: int | None = None,
) -> HandOver[list[Territory]]:
    """Claim the ZIPs, all or none (territory_claim_many's refusals), then route their waiting leads."""
    created = claims.territory_claim_many(
        contractor=contractor,
        trade=trade,
        zip_codes=zip_codes,
        claimed_by=claimed_by,
        note=note,
        self_service_limit=self_service_limit,
    )
    return HandOver(created, leads_route_territories(territories=created))


def territories_claim_or_request(
    *,
    contractor: Contractor,
    trade: Trade,
    zip_codes: Iterable[str],
    note: str = "",
    requested_by: User | None = None,
) -> HandOver[list[Territory]] | ClaimRequest:
    """A contractor's own claim: made at once (and the ZIPs' waiting leads routed) when its trade is open
    for self-service and the contractor stays within the trade's self-service ZIP limit; otherwise a claim
    request for staff. A conflict refuses either, as a claim is refused."""
    codes = list(zip_codes)
    limit = requests.self_service_limit(trade=trade)
    if limit is not None:
        try:
            return territories_claim(
                contractor=contractor, trade=trade, zip_codes=codes, note=note, self_service_limit=limit
            )
        except SelfServiceLimitReached:
            pass  # past the limit: staff decide
    return requests.claim_request_create(
        contractor=contractor, trade=trade, zip_codes=codes, note=note, requested_by=requested_by
    )


def claim_request_approve(*, request: ClaimRequest, user: User | None, note: str = "") -> HandOver[list[Territory]]:
    """Approve a claim request (its ZIPs claimed, all or none), then route their waiting leads."""
    created = requests.claim_request_approve(request=request, user=user, note=note)
    return HandOver(created, leads_route_territories(territories=created))


def territories_transfer(
    *,
    territories: Iterable[Territory],
    to_contractor: Contractor,
    transferred_by: User | None = None,
    note: str = "",
) -> HandOver[list[Territory]]:
    """Move the ownerships to `to_contractor`, all or none; the new owner gets the ZIPs' waiting leads."""
    created = ownership.territory_transfer_many(
        territories=territories, to_contractor=to_contractor, transferred_by=transferred_by, note=note
    )
    return HandOver(created, leads_route_territories(territories=created))


def territories_release(
    *, territories: Iterable[Territory], released_by: User | None = None, note: str = ""
) -> HandOver[Released]:
    """End the ownerships, all or none; each freed ZIP goes to its waitlist (an offer, or with auto-claim
    the territory, whose waiting leads are routed to its new owner)."""
    released = ownership.territory_release_many(territories=territories, released_by=released_by, note=note)
    _promotions_post_soon(released.promotions)
    return HandOver(released, leads_route_territories(territories=promotions_given(released.promotions)))


def waitlist_offer_accept(*, entry: WaitlistEntry, accepted_by: User | None = None) -> HandOver[Territory]:
    """Claim the territory a waitlist offer is for, then route its waiting leads to the new owner."""
    territory = waitlist.waitlist_offer_accept(entry=entry, accepted_by=accepted_by)
    return HandOver(territory, leads_route_territories(territories=[territory]))


def waitlist_leave(*, entry: WaitlistEntry) -> HandOver[list[Promotion]]:
    """Take the contractor out of line. Leaving with an offer in hand passes the ZIP to the next in line:
    an offer, or with auto-claim the territory, whose waiting leads are routed to its new owner."""
    promotions = waitlist.waitlist_leave(entry=entry)
    _promotions_post_soon(promotions)
    return HandOver(promotions, leads_route_territories(territories=promotions_given(promotions)))


def waitlist_offers_expire(*, now: dt.datetime | None = None) -> HandOver[OffersExpired]:
    """Close the offers that ran out; each ZIP goes to the next eligible contractor in line (an offer, or
    with auto-claim the territory, whose waiting leads are routed to its new owner)."""
    expired = waitlist.territory_offers_expire(now=now)
    _promotions_post_soon(expired.promotions)
    return HandOver(expired, leads_route_territories(territories=promotions_given(expired.promotions)))


def _promotions_post_soon(promotions: Sequence[Promotion]) -> None:
    """A waitlist offer (or territory given) to a contractor that takes webhooks is posted by a delivery
    run asked for now, not at the next scheduled one: an offer's hours are counted from when it is made."""
    if any(promotion.entry.contractor.webhook_url for promotion in promotions):
        job_run_soon(JobRun.Job.WEBHOOK_DELIVERY)


# --- Leads: generate, route, deliver ------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """The webhook delivery asked for once leads were routed to contractors that take webhooks, so they
    are posted at once rather than at the next scheduled delivery."""

    asked: bool
    run_id: int | None = None  # the run that posts them; None: the next scheduled delivery does

    def __str__(self) -> str:
        if not self.asked:
            return "no routed lead goes to a webhook"
        if self.run_id is None:
            return "the next scheduled delivery posts the routed leads"
        return f"delivery run {self.run_id} posts the routed leads"


@dataclass(frozen=True)
class LeadsMade:
    generation: list[GenerationSummary]
    routing: RoutingSummary
    webhooks: WebhookRequest
    urgent_email: WebhookRequest | None = None  # the storm fast path's (None: not asked for)

    @property
    def created(self) -> int:
        return sum(summary.created for summary in self.generation)


def job_run_soon(job: str) -> int | None:
    """Ask for a run of a delivery job (webhook delivery, the urgent email) now; the id of the run that will
    send what is assigned (None: the run under way may have missed it, and the next one sends it)."""
    try:
        return jobs.job_run_request(job=job).pk
    except jobs.JobBusy as busy:
        return busy.run.pk if busy.run.status == jobs.Status.QUEUED else None
    except jobs.JobError:  # the previous run ended just as this asked: the next scheduled one posts them
        return None


def leads_make(
    *,
    trades: list[Trade],
    now: dt.datetime | None = None,
    properties_by_trade: Mapping[int, Sequence[int]] | None = None,
) -> LeadsMade:
    """Generate the trades' leads from their current scores, route the trades' pool to the ZIPs' owners
    (best first across the trades, within each owner's caps), and ask for a webhook delivery run when
    leads were routed and some of the trades' assigned leads go to a webhook. Each step is safe to do
    again, so the whole is one unit of work for a retry. The lead generation job runs it for one trade,
    the nightly run for all of them at once.

    `properties_by_trade` (trade id: property ids): the storm fast path's, each trade's leads of those
    properties only (leads_generate), routing the pool of their ZIPs; with urgent leads for contractors
    without a webhook, it asks for the urgent email too."""
    now = now or timezone.now()
    zip_codes = None
    if properties_by_trade is None:
        generation = leads_generate_all(trades=trades, now=now)
    else:
        generation = [
            leads_generate(trade=trade, now=now, property_ids=properties_by_trade.get(trade.pk, [])) for trade in trades
        ]
        touched = sorted({pk for ids in properties_by_trade.values() for pk in ids})
        zip_codes = properties_zip_codes(property_ids=touched)
    trade_ids = [trade.pk for trade in trades]
    routing = leads_route(trade_ids=trade_ids, zip_codes=zip_codes, now=now)
    if routing.assigned and leads_to_post_exist(trade_ids=trade_ids):
        webhooks = WebhookRequest(asked=True, run_id=job_run_soon(JobRun.Job.WEBHOOK_DELIVERY))
    else:
        webhooks = WebhookRequest(asked=False)
    urgent = None
    if properties_by_trade is not None and routing.assigned and urgent_leads_to_email_exist(trade_ids=trade_ids):
        urgent = WebhookRequest(asked=True, run_id=job_run_soon(JobRun.Job.URGENT_EMAIL))
    return LeadsMade(generation=generation, routing=routing, webhooks=webhooks, urgent_email=urgent)


# --- The storm fast path: a signal reaches the contractor's door in seconds ----------------------------


@dataclass(frozen=True)
class Rescoring:
    """What one pass of the storm fast path did: the imports it took, the properties they reach, a scoring
    run per trade, and the leads made, routed and sent."""

    imports: list[int]
    properties: int
    runs: list[ScoringRun] = field(default_factory=list)
    leads: LeadsMade | None = None
    note: str = ""

    def __str__(self) -> str:
        return self.note


def imports_rescore(*, now: dt.datetime | None = None) -> Rescoring | None:
    """The storm fast path (the task leadengine.imports_rescore, sent as an import that changed storms,
    permits, sales or properties commits): take every import whose rescoring is pending, rescore only the
    properties they reach for each trade with an active model (an incremental scoring run each), make those
    properties' leads and route their ZIPs' pools (leads_make), and ask at once for the webhook delivery and,
    for urgent leads of contractors without a webhook, the urgent email. None when nothing was pending.

    One transaction, under a lock that lets one pass run at a time: the scores, the leads and the imports
    marked done commit together or not at all, so a worker killed half-way loses nothing (the imports stay
    pending; the recovery sweep sends the task again a minute later) and a pass never runs twice for one
    import. Imports reaching more than RESCORE_MAX_PROPERTIES properties are left to the nightly run. An
    import that changed nothing (the same file again) was never pending: nothing happens."""
    now = now or timezone.now()
    done = db_retry(lambda: _imports_rescore(now), what="rescoring what imports changed")
    if done is not None and done.leads is not None and done.leads.created:
        _dashboard_refresh(created=done.leads.created)
    return done


def _dashboard_refresh(*, created: int) -> None:
    """The dashboard's lead figures computed again, as after a lead generation run; a failure is logged, never
    a failure of the fast path (its leads are made and sent already)."""
    from leadengine.dashboard import dashboard_refresh

    try:
        dashboard_refresh(job=JobRun.Job.LEAD_GENERATION, counts={"leads_generated": created})
    except Exception:
        log.exception("the dashboard's figures were not refreshed after the storm fast path")


@transaction.atomic
def _imports_rescore(now: dt.datetime) -> Rescoring | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [locks.IMPORTS_RESCORE])
    pending = list(
        ImportRun.objects.select_for_update(skip_locked=True)
        .filter(rescoring=ImportRun.Rescoring.PENDING)
        .order_by("started_at", "pk")
    )
    if not pending:
        return None
    import_ids = [run.pk for run in pending]
    as_of = timezone.localdate(now)
    property_ids = properties_changed_by(imports=pending, as_of=as_of)
    most = settings.RESCORE_MAX_PROPERTIES
    # Storm reports alone change only the scores of the trades whose models read storms.
    storms_only = not any(run.changed_properties for run in pending)
    trades = list(trades_reading_storms() if storms_only else trades_with_active_model())
    if len(property_ids) > most:
        outcome = Rescoring(
            import_ids,
            len(property_ids),
            note=f"{len(property_ids):,} properties reached, over RESCORE_MAX_PROPERTIES ({most:,}): the nightly "
            "run scores them.",
        )
        status = ImportRun.Rescoring.NIGHTLY
    else:
        cause = f"import{'s' if len(pending) > 1 else ''} {', '.join(map(str, import_ids))}"
        rescored = [
            runs.scoring_run_incremental(trade=trade, property_ids=property_ids, as_of=as_of, cause=cause)
            for trade in trades
        ]
        # Leads only where a score changed: for a trade whose scores the signal left alone it is no news.
        changed = {item.run.trade_id: item.changed for item in rescored if item.changed}
        news = [trade for trade in trades if trade.pk in changed]
        made = leads_make(trades=news, now=now, properties_by_trade=changed) if news else None
        leads = f"{made.created:,} new leads, {made.routing.assigned:,} assigned" if made else "no lead"
        scored = [item.run for item in rescored]
        note = (
            f"{len(property_ids):,} properties rescored for {len(trades)} trade{'s' if len(trades) != 1 else ''} "
            f"({sum(run.scores_changed for run in scored):,} scores changed); {leads}."
        )
        outcome, status = Rescoring(import_ids, len(property_ids), scored, made, note), ImportRun.Rescoring.DONE
    ImportRun.objects.filter(pk__in=import_ids).update(rescoring=status, rescored_at=now, rescoring_note=outcome.note)
    return outcome


def imports_rescore_failed(*, error: BaseException) -> int:
    """Record a fault of the fast path's code on the imports it could not rescore (they stay pending: the
    recovery sweep sends them again, and the nightly run scores them anyway); how many."""
    note = f"Rescoring failed ({type(error).__name__}: {error}); tried again by the recovery sweep."
    return ImportRun.objects.filter(rescoring=ImportRun.Rescoring.PENDING).update(rescoring_note=note[:2000])


# --- The nightly run ----------------------------------------------------------------------------------


@dataclass
class DailyRunSummary:
    scoring: list[ScoringRun] = field(default_factory=list)
    scoring_errors: list[str] = field(default_factory=list)  # trades that could not be scored, and why
    leads: LeadsMade | None = None
    expiry: ExpirySummary | None = None
    offers: HandOver[OffersExpired] | None = None

    @property
    def ok(self) -> bool:
        return not self.scoring_errors and all(run.status == ScoringRun.Status.SUCCEEDED for run in self.scoring)

    def lines(self) -> list[str]:
        """The summary of a finished run (every step has its result)."""
        assert self.leads is not None
        assert self.offers is not None
        offers = f"waitlist offers: {self.offers.result}"
        if promotions_given(self.offers.result.promotions):
            offers += f"; their waiting leads: {self.offers.routing}"
        return [
            *(run.summary() for run in self.scoring),
            *self.scoring_errors,
            *(str(summary) for summary in self.leads.generation),
            f"routing: {self.leads.routing}",
            f"webhooks: {self.leads.webhooks}",
            f"expiry: {self.expiry}",
            offers,
        ]


def daily_run(
    *,
    trades: list[Trade] | None = None,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
    progress: Progress = no_progress,
) -> DailyRunSummary:
    """The nightly run, in order: score (the trades given, or every trade with an active scoring model),
    generate, route and deliver their leads, expire overdue leads, expire waitlist offers and route what
    they hand over. A trade whose scoring fails or is busy still gets leads from its current scores (the
    error is in the summary): one bad run does not stop the day's leads. The steps after scoring are
    idempotent, so each rides out a lost database connection (a restart) by being done again on a new one
    (db_retry, DB_RETRY_SECONDS); scoring rides it out in its partitions. `progress` hears each step start."""
    now = now or timezone.now()
    if trades is None:
        trades = db_retry(lambda: list(trades_with_active_model()), what="reading the trades to run")
    summary = DailyRunSummary()
    for trade in trades:
        progress(f"scoring {trade.slug}")
        try:
            summary.scoring.append(runs.trade_score(trade=trade, as_of=as_of or timezone.localdate(now)))
        except ScoringError as error:
            summary.scoring_errors.append(f"{trade.slug}: {error}")
    progress("generating and routing leads")
    summary.leads = db_retry(lambda: leads_make(trades=trades, now=now), what="lead generation and routing")
    progress("expiring leads")
    summary.expiry = db_retry(lambda: leads_expire(now=now), what="lead expiry")
    progress("expiring waitlist offers")
    summary.offers = db_retry(lambda: waitlist_offers_expire(now=now), what="waitlist offer expiry")
    return summary
