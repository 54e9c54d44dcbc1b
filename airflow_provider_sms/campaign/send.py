"""The bulk-send engine: a templated campaign to an audience, sent exactly once through the ledger.

Every row is normalised (E.164), de-duplicated, checked against opt-outs, rendered and written to
the message ledger *before* its batch leaves; the ledger then records the gateway's answer. A
retry or re-run of the same campaign key skips what was accepted or rejected and looks up at the
gateway whatever was in flight, resending only what is proven absent. No Airflow here: the
operator (``operators/send.py``) gives the settings, the hook, the ledger and the input chunks.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from airflow_provider_sms.campaign.dedup import RecipientSet
from airflow_provider_sms.campaign.prefetch import prefetched
from airflow_provider_sms.campaign.rails import Rails, balance_unchecked
from airflow_provider_sms.campaign.send_window import SendWindow, UnknownTimezoneError
from airflow_provider_sms.campaign.templates import MessageTemplate
from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsConcurrentRunError,
    SmsConfigurationError,
    SmsGatewayError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked, long_lived_frozen
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    InvalidPhoneNumberError,
    OutboundMessage,
    SendOutcome,
    SendResult,
    as_datetime,
    body_hash,
    count_segments,
    evolve,
    normalize_phone,
)
from airflow_provider_sms.storage.ledger import (
    ACCEPTED,
    AMBIGUOUS,
    PENDING,
    REJECTED,
    SENDING,
    SUPPRESSED,
    LedgerEntry,
    MessageLedger,
    idempotency_key,
)
from airflow_provider_sms.storage.sources import is_truthy, records, require_columns, shard_of
from airflow_provider_sms.storage.table import SqlLockTimeout, utcnow

PROGRESS_EVERY_SECONDS = 30.0
# Why a row is suppressed (the rails add "opted out" and "frequency cap", campaign/rails.py).
SUPPRESSION_LIST, UNSUBSCRIBED = "suppression list", "unsubscribed"
MAX_SEND_ROUNDS = 3
# Batch requests in flight at once by default (``max_in_flight``): the value that was never slower
# than one at a 20 ms round trip (benchmarks/RESULTS.md, "Requests in flight").
DEFAULT_MAX_IN_FLIGHT = 2
_ACCEPTED = SendOutcome("", ACCEPTED)  # copied per accepted message (evolve)
_PENDING = LedgerEntry("", PENDING, "")  # copied per rendered row (evolve)
Bodies = dict[str, tuple[str, str | None]]  # recipient -> (text, time zone of its send window)


@dataclass(frozen=True)
class SendSettings:
    """How a campaign is sent: the operator's arguments, resolved against the connection."""

    batch_size: int
    phone_column: str = "phone"
    region: str | None = None
    sender: str | None = None
    unsubscribed_column: str = "unsubscribed"
    message_options: Mapping[str, Any] = field(default_factory=dict)
    window: SendWindow | None = None
    timezone_column: str | None = None
    shard_index: int = 0
    shard_count: int = 1
    dry_run: bool = False
    cost_per_segment: float | None = None
    max_reject_ratio: float = 0.5
    resend_ambiguous: bool = False
    concurrent_run_timeout: float = 900.0
    ledger_table: str = "sms_messages"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        if isinstance(self.max_in_flight, bool) or not isinstance(self.max_in_flight, int):
            raise ValueError(f"max_in_flight must be an integer, got {self.max_in_flight!r}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")


def in_flight_count(value: Any) -> int:
    """``max_in_flight`` as an integer ≥ 1 (a rendered template gives its digits as text)."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 1:
        raise ValueError(f"max_in_flight must be an integer of at least 1, got {value!r}")
    return number


def suppression_set(numbers: Iterable[Any], region: str | None, log: logging.Logger) -> set[str]:
    """The numbers never to message, normalised (an unreadable one is logged and ignored)."""
    suppressed = set()
    for raw in numbers:
        try:
            suppressed.add(normalize_phone(raw, region))
        except InvalidPhoneNumberError:
            log.warning("Ignoring an unreadable number in the suppression list")
    return suppressed


class _NotSent(Exception):
    """A queued request that did not leave because another one (or the run itself) ended the run."""


class _Inline:
    """An executor that runs each call at once, in the caller's thread: the ledger's lane where its
    connection must stay in the thread that opened it (SQLite), or where there is no ledger."""

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except Exception as exc:  # a BaseException (the task being killed) goes straight up, as before
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        return None


@dataclass
class _Claim:
    """What the ledger's lane did for a batch about to leave: the recipients this try now holds as
    ``sending`` (recorded at ``recorded_at``, or pending rows claimed at ``claimed_at``), and the
    rows of the others as the ledger holds them (another try took them)."""

    claimed: set[str]
    recorded_at: datetime | None
    claimed_at: datetime | None
    taken: dict[str, LedgerEntry]

    @property
    def since(self) -> datetime:
        """When the batch's rows were committed as ``sending``: where a look-up of it starts."""
        return min(t for t in (self.recorded_at, self.claimed_at) if t is not None)

    def of(self, messages: list[OutboundMessage]) -> list[OutboundMessage]:
        """The messages this claim took, in their order."""
        return [m for m in messages if m.to in self.claimed]


@dataclass
class _Request:
    """A batch handed on: its claim in the ledger's lane and, behind it, its request in a gateway
    thread (which leaves only once the claim is committed, with the claimed messages only)."""

    messages: list[OutboundMessage]
    new: list[str]  # recipients the claim records (none of this try's writes held them before)
    changes: dict[str, tuple[str | None, int | None]]  # recorded rows claimed: text hash, segments
    claim: Future  # of a _Claim
    future: Future  # of the gateway's results


class CampaignSend:
    """One execution of a campaign: counters, the recipients seen, the batches going out.

    ``send_at_in(tz)`` says when a message to a recipient in ``tz`` is scheduled, asked as its batch
    leaves (default: the window's next opening there, or None to send now). ``ledger`` is None for
    a dry run. :meth:`run` sends the chunks and returns the summary.
    """

    def __init__(
        self,
        settings: SendSettings,
        hook: SmsGatewayHook,
        campaign_key: str,
        template: MessageTemplate,
        suppressed: set[str],
        ledger: MessageLedger | None,
        send_at_in: Callable[[str | None], datetime | None] | None = None,
        log: logging.Logger | None = None,
        rails: Rails | None = None,
    ) -> None:
        self.settings = settings
        self.hook = hook
        self.send_at_in = send_at_in or self._window_opening
        self.gateway: ThreadPoolExecutor | None = None  # the threads that talk to the gateway
        # The ledger's writes while batches go out (see _send_pending): on PostgreSQL the claims in
        # one thread and the marks in another, each on its own connection and in the order given,
        # so that a batch's claim never waits behind an earlier batch's mark and the main thread
        # prepares the next batch meanwhile; in the caller's thread on SQLite, whose connection
        # stays in the thread that opened it.
        self.lane: ThreadPoolExecutor | _Inline = _Inline()
        self.mark_lane: ThreadPoolExecutor | _Inline = _Inline()
        self.mark_ledger = ledger  # the marks' own connection on PostgreSQL
        self.marks: deque[Future] = deque()  # marks handed on, not seen committed yet
        self.halted = False  # set when a request failed in a way that ends the run
        # Batch requests at once: the setting, unless the gateway takes one at a time.
        capabilities = getattr(hook, "capabilities", None)  # a stand-in hook may declare none
        parallel = capabilities is None or capabilities.parallel_sends
        self.in_flight = settings.max_in_flight if parallel else 1
        self.log = log or logging.getLogger(__name__)
        self.campaign_key = campaign_key
        self.template = template
        self.suppressed = suppressed
        self.ledger = ledger
        self.rails = rails
        self.reasons: Counter = Counter()  # suppressed rows per reason
        self.seen = RecipientSet()  # every recipient read so far, ~8 bytes each (campaign/dedup.py)
        self.counts: Counter = Counter()  # outcomes, counted by the delivering thread
        self.read: Counter = Counter()  # input and duplicates, counted by the read-ahead thread
        self.segments = 0
        self.sample: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.last_progress = self.started
        self.recorded = 0
        # A campaign the ledger holds no row of yet (decided under the campaign's lock): its rows to
        # send are recorded as their batch leaves, straight as ``sending`` (record_sending), so each
        # is written twice, not three times; the rows of the chunk in hand not recorded yet:
        self.fresh = False
        self.unrecorded: set[str] = set()
        self._outbound: OutboundMessage | None = None  # see _message

    def run(self, chunks: Iterator[pd.DataFrame]) -> dict[str, Any]:
        """Send every chunk (one try of the campaign at a time), then check the rejects; the summary.
        The ledger's table (and the rails' tables) are created if missing, and closed at the end.

        With a budget to check (:meth:`RailSettings.budget_applies`), the whole audience is recorded
        first and checked, then sent: see :meth:`_record_check_send`."""
        try:
            if self.ledger is not None:
                self.ledger.ensure_table()
            if self.rails is not None:
                self.rails.open()
                unchecked = balance_unchecked(self.rails.settings, self.hook)
                if unchecked and not self._budgeted and not self.settings.dry_run:
                    self.log.info("%s", unchecked)  # else the budget check says it
            if not self.settings.dry_run and hasattr(self.hook, "use_threads"):
                self.hook.use_threads(self.in_flight)
            self.gateway = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="sms-gateway")
            if getattr(self.ledger, "is_postgres", False) and not self.settings.dry_run:
                self.lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms-claims")
                self.mark_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms-marks")
                self.mark_ledger = self.ledger.twin()
            try:
                with self._one_try_at_a_time(), long_lived_frozen():
                    self.fresh = (
                        self.ledger is not None
                        and not self.settings.dry_run
                        and not self._budgeted
                        and not self.ledger.has_rows(self.campaign_key)
                    )
                    if self._budgeted:
                        self._record_check_send(chunks)
                    else:
                        for entries, bodies in prefetched(chunks, self.prepare):
                            self.deliver(entries, bodies)
            finally:
                self.gateway.shutdown(cancel_futures=True)
                self.lane.shutdown(wait=True)  # before the ledger's connections close
                self.mark_lane.shutdown(wait=True)
        finally:
            if self.ledger is not None:
                self.ledger.close()
            if self.mark_ledger is not self.ledger:
                self.mark_ledger.close()
            if self.rails is not None:
                self.rails.close()
        summary = self.summary()
        self.log.info("Campaign %s: %s", self.campaign_key, summary)
        recipients = summary["input"] - summary["duplicates"]
        if recipients and summary["rejected"] / recipients > self.settings.max_reject_ratio:
            raise SmsValidationError(
                f"{summary['rejected']} of {recipients} recipients were rejected "
                f"(more than max_reject_ratio={self.settings.max_reject_ratio}); reasons are in the ledger "
                f"table {self.settings.ledger_table!r} for campaign {self.campaign_key!r}"
            )
        return summary

    @contextmanager
    def _one_try_at_a_time(self) -> Iterator[None]:
        """Hold the campaign's (and shard's) lock in the ledger's database while the run sends:
        a second try of it waits, then finds the work done instead of sending it again."""
        if self.ledger is None:
            yield
            return
        shard = f"{self.settings.shard_index}/{self.settings.shard_count}"
        try:
            with self.ledger.exclusive(
                f"campaign\x1f{self.campaign_key}\x1f{shard}",
                timeout=self.settings.concurrent_run_timeout,
                waiting=f"another try of campaign {self.campaign_key!r} (shard {shard}) is sending",
            ):
                yield
        except SqlLockTimeout as exc:
            raise SmsConcurrentRunError(
                f"{exc}; it was not sent twice. Run it again once the other try has finished."
            ) from None

    # -- one chunk of input rows -------------------------------------------------------------------

    def prepare(self, chunk: pd.DataFrame) -> tuple[list[LedgerEntry], Bodies]:
        """Ledger entries and texts for one chunk of input rows (runs ahead, in the read-ahead thread).

        The rows' recipients are read first, then checked against those seen so far all at once
        (:meth:`RecipientSet.first_seen`): the first row of a recipient in the input is the one
        used, a later one is counted as a duplicate."""
        require_columns(list(chunk.columns), [self.settings.phone_column], "the audience")
        self.template.check_columns(chunk.columns)
        entries: list[LedgerEntry] = []
        bodies: Bodies = {}
        rows = records(chunk)
        read = [self._recipient(row) for row in rows]
        first = iter(self.seen.first_seen([r for r in read if isinstance(r, str)]))
        for row, recipient in zip(rows, read, strict=True):
            if recipient is None:  # another shard's row
                continue
            if isinstance(recipient, LedgerEntry):  # an unreadable number, rejected
                entries.append(recipient)
                continue
            if not next(first):
                self.read["duplicates"] += 1
                continue
            entry, body = self._prepare(row, recipient)
            entries.append(entry)
            if body is not None:
                bodies[entry.recipient] = body
        return entries, bodies

    def deliver(self, entries: list[LedgerEntry], bodies: Bodies) -> None:
        """Record one prepared chunk in the ledger and send what it still has to send."""
        if self.settings.dry_run:
            entries, _ = self._apply_rails(entries)
            for entry in entries:
                self.counts["would_send" if entry.state == PENDING else entry.state] += 1
                if entry.state == PENDING:
                    self.segments += entry.segments or 0
                elif entry.state == SUPPRESSED:
                    self.reasons[entry.error] += 1
            self._progress()
            return
        self._send_recorded(self.record(entries), bodies)

    @property
    def _budgeted(self) -> bool:
        return (
            not self.settings.dry_run
            and self.rails is not None
            and self.rails.settings.budget_applies(self.hook)
        )

    def _record_check_send(self, chunks: Iterator[pd.DataFrame]) -> None:
        """Record every chunk first (its texts spooled to an unnamed temporary file, gone when it
        is closed or the process dies), check the budget against the segments the ledger then
        holds as ``pending`` for this run's recipients (a retry counts only what is still to
        send), and only then send, chunk by chunk from the spool: the audience is read once."""
        with tempfile.TemporaryFile(prefix="sms-campaign-") as spool:
            segments = 0
            for entries, bodies in prefetched(chunks, self.prepare):
                current = self.record(entries)
                segments += sum(e.segments or 0 for e in current.values() if e.state == PENDING)
                pickle.dump(
                    (current, {r: b for r, b in bodies.items() if current[r].state != SUPPRESSED}), spool
                )
            try:
                self.rails.check_budget(self.hook, segments, f"campaign {self.campaign_key!r}")
            except SmsValidationError as exc:  # the balance request refused: a wrong URL, say
                raise SmsConfigurationError(
                    f"{exc}; the balance could not be read, so nothing of campaign {self.campaign_key!r} "
                    "was sent: its messages stay pending in the ledger. Fix the connection (or set "
                    "check_balance=False), then run the campaign again"
                ) from exc
            spool.seek(0)
            while True:
                try:
                    current, bodies = pickle.load(spool)  # our own spool, written above
                except EOFError:
                    break
                self._send_recorded(current, bodies)

    def record(self, entries: list[LedgerEntry]) -> dict[str, LedgerEntry]:
        """Apply the rails to a prepared chunk and record it in the ledger; returns the chunk's rows
        as the ledger now holds them (``current``, which from here on follows every write)."""
        entries, left_out = self._apply_rails(entries)
        if self.fresh:  # only what never leaves is recorded now; the rest as its batch leaves
            others = [e for e in entries if e.state != PENDING]
            if self.ledger.record(self.campaign_key, others) == len(others):
                self.unrecorded = {e.recipient for e in entries if e.state == PENDING}
                self._recorded(len(entries))
                return {e.recipient: e for e in entries}
            self.fresh = False  # rows of this campaign appeared meanwhile: every chunk as a retry's
        inserted = self.ledger.record(self.campaign_key, entries)
        self._recorded(len(entries))
        # Rows an earlier try wrote win over this try's entries, so they are read back unless every
        # row was new.
        if inserted == len(entries):
            return {e.recipient: e for e in entries}
        loaded = self.ledger.load(self.campaign_key, [e.recipient for e in entries])
        current = {e.recipient: loaded[e.recipient] for e in entries}  # in the input's order
        late = {r: reason for r, reason in left_out.items() if current[r].state == PENDING}
        if late:  # recorded by an earlier try, not sent yet: an opt-out since then still counts
            self.ledger.suppress(self.campaign_key, late)
            current.update(self.ledger.load(self.campaign_key, list(late)))
        return current

    def _apply_rails(self, entries: list[LedgerEntry]) -> tuple[list[LedgerEntry], dict[str, str]]:
        """The entries with those the rails leave out (opted out, capped) suppressed with the reason."""
        if self.rails is None:
            return entries, {}
        left_out = self.rails.exclusions([e.recipient for e in entries if e.state == PENDING])
        if not left_out:
            return entries, {}
        return [
            replace(e, state=SUPPRESSED, error=left_out[e.recipient], body_hash=None, segments=None)
            if e.recipient in left_out
            else e
            for e in entries
        ], left_out

    def _send_recorded(self, current: dict[str, LedgerEntry], bodies: Bodies) -> None:
        """Send what a recorded chunk still has to send, then count its rows."""
        self._settle_in_flight(current, bodies)
        pending = [e for e in current.values() if e.state == PENDING]
        self._send_pending(pending, bodies, current)
        for row in current.values():
            self.counts[row.state] += 1
            if row.state in (ACCEPTED, PENDING, SENDING, AMBIGUOUS) and row.segments:
                self.segments += row.segments
            elif row.state == SUPPRESSED:
                self.reasons[row.error] += 1
        self._progress()

    def _recorded(self, rows: int) -> None:
        """Refresh the ledger's statistics as this run grows it by powers of ten (see ``analyze``)."""
        before, self.recorded = self.recorded, self.recorded + rows
        if len(str(self.recorded)) > len(str(before)) and self.recorded >= 1000:
            self.ledger.analyze()

    def _recipient(self, row: dict[str, Any]) -> str | LedgerEntry | None:
        """Count one input row and read its recipient (E.164); a rejected entry for an unreadable
        number, or None for a row another shard sends."""
        s = self.settings
        self.read["input"] += 1
        position = int(row["_row"])  # popped by _prepare
        raw_phone = row.get(s.phone_column)
        try:
            recipient = normalize_phone(raw_phone, s.region)
        except InvalidPhoneNumberError as exc:
            if s.shard_count > 1 and position % s.shard_count != s.shard_index:
                self.read["input"] -= 1  # another shard records this reject
                return None
            key = f"invalid:{position}:{str(raw_phone)[:200]}"
            return LedgerEntry(
                key, REJECTED, idempotency_key(self.campaign_key, key), error=exc.reason, source_row=position
            )
        if s.shard_count > 1 and shard_of(recipient, s.shard_count) != s.shard_index:
            self.read["input"] -= 1
            return None
        return recipient

    def _prepare(
        self, row: dict[str, Any], recipient: str
    ) -> tuple[LedgerEntry, tuple[str, str | None] | None]:
        """Suppress or render the first row of a recipient (read by :meth:`_recipient`)."""
        s = self.settings
        position = int(row.pop("_row"))
        key = idempotency_key(self.campaign_key, recipient)
        if recipient in self.suppressed:
            return LedgerEntry(recipient, SUPPRESSED, key, error=SUPPRESSION_LIST, source_row=position), None
        if s.unsubscribed_column in row and is_truthy(row[s.unsubscribed_column]):
            return LedgerEntry(recipient, SUPPRESSED, key, error=UNSUBSCRIBED, source_row=position), None
        try:
            tz = self._window_zone_for(row)  # the schedule time itself is decided as the batch leaves
        except UnknownTimezoneError as exc:
            return LedgerEntry(recipient, REJECTED, key, error=str(exc), source_row=position), None
        body = self.template.render(
            {k: _clean(row[k]) for k in self.template.variables if k in row}, position=position
        )
        if not body:
            return LedgerEntry(recipient, REJECTED, key, error="empty message", source_row=position), None
        segments = count_segments(body).segments
        if len(self.sample) < 3:
            self.sample.append({"to": recipient, "body": body, "segments": segments})
        entry = evolve(  # LedgerEntry(recipient, PENDING, key, body_hash=..., segments=..., source_row=...)
            _PENDING,
            recipient=recipient,
            idempotency_key=key,
            body_hash=body_hash(body),
            segments=segments,
            source_row=position,
        )
        return entry, (body, tz)

    def _window_zone_for(self, row: Mapping[str, Any]) -> str | None:
        """The time zone of a row's send window (None without a window). Raises
        UnknownTimezoneError for a ``timezone_column`` name the tz database lacks."""
        window = self.settings.window
        if window is None:
            return None
        if self.settings.timezone_column:
            return window.zone_of(row.get(self.settings.timezone_column))
        return window.timezone

    def _window_opening(self, tz: str | None) -> datetime | None:
        window = self.settings.window
        return None if tz is None or window is None else window.next_opening(tz)

    # -- sending -----------------------------------------------------------------------------------

    def _message(self, entry: LedgerEntry, bodies: Bodies) -> OutboundMessage:
        body, tz = bodies[entry.recipient]
        s, outbound = self.settings, self._outbound
        if outbound is None or outbound.sender is not s.sender or outbound.options is not s.message_options:
            # What every message of the run shares; each is a copy with its own fields (evolve).
            outbound = self._outbound = OutboundMessage("", "", sender=s.sender, options=s.message_options)
        return evolve(
            outbound, to=entry.recipient, body=body, key=entry.idempotency_key, send_at=self.send_at_in(tz)
        )

    def _send_pending(
        self, entries: list[LedgerEntry], bodies: Bodies, current: dict[str, LedgerEntry]
    ) -> None:
        """Send ``entries``; what a lost answer left proven absent goes out again, a few rounds at most.

        Up to ``in_flight`` requests are at the gateway while the main thread settles the oldest
        and prepares the next batch. Each batch is claimed (committed as ``sending``) in the
        claims' lane, and its request, in a gateway thread, leaves only once that claim is
        committed, with the messages claimed. Outcomes are settled, and their marks handed to the
        marks' lane, in the order the requests were made. A round claims each row once, and every
        mark is committed before the round's end is read (a row marked ``pending`` again is so in
        the ledger before the next round claims it), so the ledger's writes and the counters do
        not depend on which answer came first.
        """
        recipients = [e.recipient for e in entries]
        for _ in range(MAX_SEND_ROUNDS):
            window: deque[_Request] = deque()  # submitted, not settled yet: oldest first
            try:
                for batch in chunked(entries, self.settings.batch_size):
                    if self.halted:  # a request in the window failed for good: settling it raises
                        break
                    window.append(self._hand_on([self._message(e, bodies) for e in batch], current))
                    # One more than the threads: the next batch is queued, ready when a thread frees.
                    while len(window) > self.in_flight:
                        self._settle(window.popleft(), current)
                while window:
                    self._settle(window.popleft(), current)
                self._committed(wait=True)
            except BaseException:
                self._settle_after_failure(window, current)
                self._committed_anyway()
                self._record_unsent(current)
                raise
            entries = [current[r] for r in recipients if current[r].state == PENDING]
            if not entries:
                return
        raise SmsTransientError(
            f"{len(entries)} messages of campaign {self.campaign_key!r} are still unsent after "
            f"{MAX_SEND_ROUNDS} rounds of lost answers; they are pending in the ledger and a retry sends them"
        )

    def _hand_on(self, messages: list[OutboundMessage], current: dict[str, LedgerEntry]) -> _Request:
        """Hand a batch to the ledger's lane (its claim) and to the gateway threads (its request,
        which waits for the claim). Rows this try has not recorded yet are recorded straight as
        ``sending``; rows recorded as ``pending`` are claimed with the text about to leave where it
        changed since it was recorded."""
        new = [m.to for m in messages if m.to in self.unrecorded]
        self.unrecorded.difference_update(new)  # given back by _claimed if the claim fails
        changes: dict[str, tuple[str | None, int | None]] = {}
        fresh = set(new)
        for m in messages:
            if m.to in fresh:  # rendered by this try, so their texts are the ones prepared
                continue
            text = body_hash(m.body)
            changed = text != current[m.to].body_hash  # the template or the row changed since it was recorded
            changes[m.to] = (text, count_segments(m.body).segments) if changed else (None, None)
        try:
            claim = self.lane.submit(
                self._claim, [current[r] for r in new], changes, [m.to for m in messages]
            )
        except BaseException:  # inline, and the task is being killed: nothing of it was committed
            self.unrecorded.update(new)
            raise
        return _Request(messages, new, changes, claim, self.gateway.submit(self._send_batch, claim, messages))

    def _claim(
        self,
        rows: list[LedgerEntry],
        changes: dict[str, tuple[str | None, int | None]],
        recipients: list[str],
    ) -> _Claim:
        """In the claims' lane: commit a batch's rows as ``sending``; a row another try took
        meanwhile is read back, not sent. A failure ends the run: nothing more leaves."""
        recorded_at = claimed_at = None
        claimed: set[str] = set()
        with self._ending_the_run_on_failure():
            if rows:
                recorded_at, claimed = self.ledger.record_sending(self.campaign_key, rows)
            if changes:
                claimed_at, more = self.ledger.claim(
                    self.campaign_key, [(r, text, segments) for r, (text, segments) in changes.items()]
                )
                claimed |= more
            taken = [r for r in recipients if r not in claimed]
            loaded = self.ledger.load(self.campaign_key, taken) if taken else {}
        return _Claim(claimed, recorded_at, claimed_at, loaded)

    @contextmanager
    def _ending_the_run_on_failure(self) -> Iterator[None]:
        """A ledger write in a lane: if it fails, nothing more leaves (the main thread raises it)."""
        try:
            yield
        except BaseException:
            self.halted = True
            raise

    def _claimed(self, request: _Request, current: dict[str, LedgerEntry]) -> _Claim:
        """The request's claim, once committed, with ``current`` in step with it. A claim that
        failed wrote nothing: its new rows are unrecorded again, and its error is raised."""
        try:
            claim = request.claim.result()
        except BaseException:
            self.unrecorded.update(request.new)
            raise
        for recipient in request.new:
            if recipient in claim.claimed:
                current[recipient] = evolve(current[recipient], state=SENDING, sent_at=claim.recorded_at)
        for recipient, (text, segments) in request.changes.items():
            if recipient in claim.claimed:
                row = current[recipient]
                current[recipient] = evolve(
                    row,
                    state=SENDING,
                    sent_at=claim.claimed_at,
                    body_hash=text or row.body_hash,
                    segments=segments or row.segments,
                )
        if claim.taken:
            self.log.warning(
                "%d rows were taken by another try of this campaign; not sending them", len(claim.taken)
            )
            current.update(claim.taken)
        return claim

    def _send_batch(self, claim: Future, messages: list[OutboundMessage]) -> list[SendResult]:
        """In a gateway thread: once the batch's claim is committed, send the messages it claimed,
        unless a request failed in a way that ends the run (then nothing more leaves; requests
        already at the gateway are settled by the main thread). A claim that failed sends nothing
        (the main thread raises its error)."""
        try:
            messages = claim.result().of(messages)
        except BaseException:
            raise _NotSent from None
        if self.halted:
            raise _NotSent
        if not messages:
            return []
        try:
            return self.hook.send_batch(messages)
        except SmsAmbiguousSendError:
            raise  # settled batch by batch; the run goes on
        except BaseException:
            self.halted = True
            raise

    def _on_gateway(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call the hook in a gateway thread, behind any request still queued (with one thread,
        behind the request in flight: the hook has one caller at a time)."""
        return self.gateway.submit(function, *args).result()

    def _mark(self, outcomes: list[SendOutcome], current: dict[str, LedgerEntry]) -> None:
        """Hand outcomes to the ledger's lane (one transaction) and keep ``current`` in step with
        what it writes; a mark that failed is raised here, or at the end of the round."""
        self.marks.append(self.mark_lane.submit(self._write_marks, outcomes))
        for o in outcomes:
            current[o.recipient] = evolve(
                current[o.recipient], state=o.state, message_id=o.message_id, error=o.error
            )
        self._committed(wait=False)

    def _write_marks(self, outcomes: list[SendOutcome]) -> None:
        """In the marks' lane: one transaction. A failure ends the run: nothing more leaves."""
        with self._ending_the_run_on_failure():
            self.mark_ledger.mark(self.campaign_key, outcomes)

    def _committed(self, wait: bool) -> None:
        """Raise the error of a mark that failed: of those done (``wait``: of every one, waiting)."""
        while self.marks and (wait or self.marks[0].done()):
            self.marks.popleft().result()

    def _committed_anyway(self) -> None:
        """The run is failing: wait for the marks handed on (what they write stands), logging failures."""
        while self.marks:
            try:
                self.marks.popleft().result()
            except Exception as exc:  # the first failure is the one raised
                self.log.warning("Could not record the outcome of a batch: %r", exc)

    def _mark_all(
        self, messages: list[OutboundMessage], state: str, error: str | None, current: dict[str, LedgerEntry]
    ) -> None:
        """Give every message of a request the same state (and reason), without a gateway id."""
        self._mark([SendOutcome(m.to, state, error=error) for m in messages], current)

    def _settle_after_failure(self, window: deque[_Request], current: dict[str, LedgerEntry]) -> None:
        """The run is failing: nothing that has not left may leave, and everything that left is
        settled (its answer, or a look-up where it was lost), oldest first. Whatever goes wrong
        here is logged; the first failure is the one raised."""
        self.halted = True  # a queued request that a thread picks up now raises _NotSent
        while window:
            request = window.popleft()
            try:
                if not request.future.cancel():
                    self._settle(request, current)
                elif not request.claim.cancel():  # never left: provably not sent
                    claim = self._claimed(request, current)
                    self._mark_all(claim.of(request.messages), PENDING, None, current)
                else:  # neither claimed nor sent
                    self.unrecorded.update(request.new)
            except BaseException as exc:
                # The request's own failure (even a BaseException its thread died of) is logged and
                # the next request settled; anything else (the task being killed now) goes on up.
                if not isinstance(exc, Exception) and not _raised_by(request, exc):
                    raise
                self.log.warning("A batch in flight when the run failed failed too: %r", exc)

    def _record_unsent(self, current: dict[str, LedgerEntry]) -> None:
        """The run is failing: the chunk's rows not recorded yet go in as ``pending`` (what a retry's
        record would write), so the ledger shows what is left to send. A process killed outright
        cannot do this; its retry records them."""
        rows = [e for r, e in current.items() if r in self.unrecorded and e.state == PENDING]
        self.unrecorded = set()
        if rows:
            try:
                self.ledger.record(self.campaign_key, rows)
            except Exception as exc:  # the first failure is the one raised
                self.log.warning("Could not record %d unsent rows as pending: %r", len(rows), exc)

    def _settle(self, request: _Request, current: dict[str, LedgerEntry]) -> None:
        """Record the outcome of a request: its results, or what a failure proves about its messages."""
        claim = self._claimed(request, current)
        messages = claim.of(request.messages)
        if not messages:
            return
        since = claim.since
        try:
            results = request.future.result()
        except SmsAmbiguousSendError as exc:
            self.log.warning(
                "Lost the answer to a batch of %d; looking it up at the gateway: %s", len(messages), exc
            )
            self._look_up(messages, since, current)
            return
        except SmsValidationError as exc:
            # Refused as a whole for a reason that is not about its recipients (a wrong URL, the
            # sender, the schedule): nothing was stored, and retrying will not help. The messages
            # stay pending, so that a run after the fix sends them.
            self._mark_all(messages, PENDING, str(exc), current)
            raise SmsConfigurationError(
                f"{exc}; {len(messages)} messages of campaign {self.campaign_key!r} were not sent and stay "
                "pending in the ledger: fix the connection or the message, then run the campaign again"
            ) from exc
        except SmsGatewayError as exc:  # the gateway answered with a refusal, or nothing left: not stored
            self._mark_all(messages, PENDING, str(exc), current)
            raise
        except _NotSent:  # an earlier request ended the run before this one left
            self._mark_all(messages, PENDING, None, current)
            return
        # Accepted, but the gateway's answer carries no id (SmsGateway24's addalotofsms): look it up.
        unknown = [r.message for r in results if r.accepted and not r.message_id and r.message.key]
        identify = {m.to for m in unknown}
        self._mark(
            [
                evolve(_ACCEPTED, recipient=r.message.to, message_id=r.message_id, status=str(r.status))
                if r.accepted
                else SendOutcome(r.message.to, REJECTED, error=r.error or "rejected by the gateway")
                for r in results
                if r.message.to not in identify
            ],
            current,
        )
        if unknown:
            self._identify(unknown, since, current)

    def _identify(
        self, messages: list[OutboundMessage], since: datetime, current: dict[str, LedgerEntry]
    ) -> None:
        """Find the ids of messages the gateway accepted without naming them. They were accepted,
        so they are never sent again: a failed look-up leaves them accepted without an id, and
        one the gateway does not list is rejected with that reason."""
        try:
            found = self._on_gateway(self.hook.find_sent, messages, since - CLOCK_SKEW)
        except SmsGatewayError as exc:
            self.log.warning(
                "Accepted, but their ids could not be looked up (%s): %d messages", exc, len(messages)
            )
            self._mark_all(messages, ACCEPTED, f"accepted; id look-up failed: {exc}", current)
            return
        outcomes = []
        for m in messages:
            report = found.get(m.key)
            if report is None:
                error = f"the gateway accepted the request but lists no message with key {m.key}"
                outcomes.append(SendOutcome(m.to, REJECTED, error=error))
            else:
                outcomes.append(
                    SendOutcome(m.to, ACCEPTED, report.message_id, str(report.status), report.raw_status)
                )
        self._mark(outcomes, current)

    def _look_up(
        self, messages: list[OutboundMessage], since: datetime, current: dict[str, LedgerEntry]
    ) -> None:
        """Decide the fate of messages whose answer was lost: found at the gateway → accepted; proven
        absent by a look-up that worked → pending (sent again). When the look-up itself fails nothing
        is proven: the rows become ``ambiguous`` (a later try looks again), or pending with
        ``resend_ambiguous``."""
        try:
            found = self._on_gateway(self.hook.find_sent, messages, since - CLOCK_SKEW)
        except SmsGatewayError as exc:
            state = PENDING if self.settings.resend_ambiguous else AMBIGUOUS
            self.log.warning("Look-up failed (%s); %d messages are %s", exc, len(messages), state)
            self._mark_all(messages, state, str(exc), current)
            return
        outcomes: list[SendOutcome] = []
        for m in messages:
            report = found.get(m.key)
            if report is not None:
                outcomes.append(
                    SendOutcome(m.to, ACCEPTED, report.message_id, str(report.status), report.raw_status)
                )
            else:
                outcomes.append(SendOutcome(m.to, PENDING))
        self._mark(outcomes, current)
        self.log.info(
            "Look-up: %d of %d found at the gateway, the rest proven absent", len(found), len(messages)
        )

    def _settle_in_flight(self, current: dict[str, LedgerEntry], bodies: Bodies) -> None:
        """Rows an earlier try left ``sending`` (a crash mid-request) or ``ambiguous``: look them up first."""
        in_flight = [e for e in current.values() if e.state in (SENDING, AMBIGUOUS) and e.recipient in bodies]
        if in_flight:
            self.log.info("%d messages were in flight in an earlier try; looking them up", len(in_flight))
        for batch in chunked(in_flight, 500):
            since = min((as_datetime(e.sent_at) for e in batch if e.sent_at), default=None)
            # Matched by the text that was sent then (its hash), not by what this try would send.
            messages = [replace(self._message(e, bodies), sent_hash=e.body_hash) for e in batch]
            self._look_up(messages, since or utcnow() - timedelta(days=1), current)
        self._committed(wait=True)  # what is proven absent is pending in the ledger before it is claimed

    # -- reporting ---------------------------------------------------------------------------------

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY_SECONDS:
            done = self.read["input"]
            self.log.info("Progress: %d rows, %.0f rows/s", done, done / max(now - self.started, 1e-9))
            self.last_progress = now

    def summary(self) -> dict[str, Any]:
        c = self.counts + self.read
        summary = {
            "campaign_key": self.campaign_key,
            "ledger_table": self.settings.ledger_table,
            "input": c["input"],
            "accepted": c[ACCEPTED],
            "rejected": c[REJECTED],
            "suppressed": c[SUPPRESSED],
            "duplicates": c["duplicates"],
            "ambiguous": c[AMBIGUOUS] + c[SENDING] + c[PENDING],
            "segments": self.segments,
            "suppressed_reasons": dict(sorted(self.reasons.items())),
        }
        if self.settings.dry_run:
            summary["dry_run"] = True
            summary["would_send"] = c["would_send"]
            summary["sample"] = self.sample
            if self.settings.cost_per_segment is not None:
                summary["estimated_cost"] = round(self.segments * self.settings.cost_per_segment, 4)
        return summary


def _raised_by(request: _Request, exc: BaseException) -> bool:
    """Whether ``exc`` is the request's own outcome (what its thread raised)."""
    future = request.future
    return future.done() and not future.cancelled() and future.exception() is exc


_NEVER_MISSING = frozenset({str, int, bool})  # exactly these types: pd.isna is False for them


def _clean(value: Any) -> Any:
    """Missing values render as empty text, not as "nan"."""
    if type(value) in _NEVER_MISSING:
        return value
    if value is None:
        return ""
    try:
        return "" if pd.isna(value) else value
    except (TypeError, ValueError):
        return value
