"""SmsBulkSendOperator: a templated campaign to an audience, sent exactly once through a ledger."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import pandas as pd
import pendulum
from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign.prefetch import prefetched
from airflow_provider_sms.campaign.send_window import SendWindow, UnknownTimezoneError, parse_window, zone
from airflow_provider_sms.campaign.templates import MessageTemplate
from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsGatewayError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    InvalidPhoneNumberError,
    OutboundMessage,
    SendResult,
    as_datetime,
    body_hash,
    count_segments,
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
from airflow_provider_sms.storage.sources import (
    DEFAULT_CHUNK_SIZE,
    is_truthy,
    iter_chunks,
    require_columns,
    shard_of,
)
from airflow_provider_sms.storage.table import SqlLockTimeout, get_sql_hook, utcnow

# How far before a request's recorded send time a look-up searches (clock skew between us and the gateway).
PROGRESS_EVERY_SECONDS = 30.0
MAX_SEND_ROUNDS = 3
# (recipient, state, message_id, status, raw_status, error), as MessageLedger.mark takes them.
Outcome = tuple[str, str, str | None, str | None, str | None, str | None]


def ledger_asset(ledger_conn_id: str, table: str) -> Asset:
    """The Asset that stands for a ledger or report table, so downstream DAGs can run on it."""
    return Asset(name=f"{ledger_conn_id}.{table}", uri=f"sms-table://{ledger_conn_id}/{table}")


def _default_outlets(dry_run: bool, ledger_conn_id: str, ledger_table: str) -> list[Asset]:
    """The ledger table, unless nothing is recorded (a dry run)."""
    return [] if dry_run else [ledger_asset(ledger_conn_id, ledger_table)]


class SmsBulkSendOperator(BaseOperator):
    """Send one templated SMS per recipient of an audience, exactly once across retries and re-runs.

    Every row is normalised (E.164), de-duplicated, checked against opt-outs, rendered and written to
    the message ledger *before* its batch leaves; the ledger then records the gateway's answer. A
    retry or re-run of the same ``campaign_key`` skips what was accepted or rejected and looks up at
    the gateway whatever was in flight, resending only what is proven absent.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param message: Jinja template rendered per row with the row's columns (sandboxed; an unknown
        column fails the task before anything is sent). Also available: ``campaign_key``, ``ds``,
        ``logical_date``, ``params``. Not an Airflow template field, so ``{{ name }}`` means the column.
    :param audience: a DataFrame or a list of dicts (templated: may be an upstream task's XCom).
    :param sql: a query returning the audience, read in chunks (templated); with ``sql_conn_id``.
    :param sql_conn_id: the Airflow SQL connection ``sql`` runs on.
    :param phone_column: column holding the phone number.
    :param default_region: region for national numbers; defaults to the connection's ``default_region``.
    :param campaign_key: identifies the campaign in the ledger (templated); defaults to
        ``<dag_id>.<task_id>.<logical date or run id>``. Re-running the same key sends nothing twice.
    :param ledger_conn_id: SQL connection of the ledger table (created if missing).
    :param ledger_table: ledger table name.
    :param sender: sender id/number; defaults to the connection's ``sender_id``.
    :param unsubscribed_column: rows with a truthy value here are suppressed (ignored if absent).
    :param suppression_list: numbers never to message (any format ``normalize_phone`` reads).
    :param suppression_sql: a query whose first column lists numbers never to message (templated),
        run on ``suppression_conn_id`` (default ``sql_conn_id``).
    :param send_window: ``("09:00", "20:00")``: only deliver within these local hours. A wall time
        that a daylight-saving change skips stands for the first instant after it (02:30 on the
        spring-forward day in Berlin is 03:00).
    :param window_timezone: IANA timezone of ``send_window`` (default UTC).
    :param timezone_column: column with each recipient's IANA timezone (overrides ``window_timezone``).
        An empty cell (None, NaN, blank) means ``window_timezone``; a name the tz database does not
        know rejects that row with the reason ``unknown timezone '...'`` (recorded in the ledger, so
        a retry does not trip on it again; it counts towards ``max_reject_ratio``).
    :param window_mode: what happens outside the window. ``"schedule"``: each message whose
        recipient's window is closed is scheduled at the gateway for that window's next opening.
        ``"defer"``: the task defers (freeing its worker slot) until the window opens in
        ``window_timezone``, checking again when it wakes; then it sends like ``"schedule"``, so a
        recipient whose own window (``timezone_column``) is still closed is scheduled at the gateway
        for their own next opening. In both modes each message's window is checked against the
        clock as its batch leaves, so on a long run batches that leave after the window opened go
        at once and those that leave after it closed are scheduled for the next opening.
    :param shard_index: with ``shard_count``, this task handles only its stable share of recipients
        (for dynamic task mapping: ``.partial(...).expand(shard_index=range(n))``).
    :param shard_count: number of shards.
    :param dry_run: compute and log everything, record and send nothing.
    :param cost_per_segment: price of one segment, for the dry-run estimate.
    :param max_reject_ratio: fail (after recording everything) if more than this share of the
        recipients was rejected.
    :param resend_ambiguous: resend messages whose fate no look-up could settle (risking a duplicate);
        by default they stay ``ambiguous`` and every later try looks them up again.
    :param chunk_size: rows read and recorded at a time.
    :param batch_size: messages per request; at most (and by default) the gateway's maximum.
    :param message_options: gateway-specific send fields for every message (``sim``, ``type``...).
    :param concurrent_run_timeout: seconds to wait while another try of the same campaign (and
        shard) is running (a manual re-run beside the scheduled one, a retry beside a lost worker's
        try that is still alive) before failing; the two never send at the same time.
    """

    template_fields: Sequence[str] = ("audience", "sql", "campaign_key", "suppression_sql", "sender")
    template_fields_renderers = {"sql": "sql", "suppression_sql": "sql"}
    ui_color = "#d9f2e6"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        message: str,
        audience: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        phone_column: str = "phone",
        default_region: str | None = None,
        campaign_key: str | None = None,
        ledger_conn_id: str = "sqlite_default",
        ledger_table: str = "sms_messages",
        sender: str | None = None,
        unsubscribed_column: str = "unsubscribed",
        suppression_list: Sequence[str] | None = None,
        suppression_sql: str | None = None,
        suppression_conn_id: str | None = None,
        send_window: tuple[str, str] | None = None,
        window_timezone: str = "UTC",
        timezone_column: str | None = None,
        window_mode: str = "schedule",
        shard_index: int = 0,
        shard_count: int = 1,
        dry_run: bool = False,
        cost_per_segment: float | None = None,
        max_reject_ratio: float = 0.5,
        resend_ambiguous: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        message_options: Mapping[str, Any] | None = None,
        concurrent_run_timeout: float = 900.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", _default_outlets(dry_run, ledger_conn_id, ledger_table))
        super().__init__(**kwargs)
        if (audience is None) == (sql is None):
            raise ValueError("give exactly one of audience (DataFrame or list of dicts) and sql")
        if window_mode not in ("schedule", "defer"):
            raise ValueError("window_mode must be 'schedule' or 'defer'")
        if send_window:
            zone(window_timezone)  # an unknown zone fails when the DAG is parsed, not mid-run
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
        self.sms_conn_id = sms_conn_id
        self.message = message
        self.audience = audience
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.phone_column = phone_column
        self.default_region = default_region
        self.campaign_key = campaign_key
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table = ledger_table
        self.sender = sender
        self.unsubscribed_column = unsubscribed_column
        self.suppression_list = suppression_list
        self.suppression_sql = suppression_sql
        self.suppression_conn_id = suppression_conn_id
        self.send_window = parse_window(send_window) if send_window else None
        self.window_timezone = window_timezone
        self.timezone_column = timezone_column
        self.window_mode = window_mode
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.dry_run = dry_run
        self.cost_per_segment = cost_per_segment
        self.max_reject_ratio = max_reject_ratio
        self.resend_ambiguous = resend_ambiguous
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.message_options = dict(message_options or {})
        self.concurrent_run_timeout = concurrent_run_timeout

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, with the same outlets default as ``__init__``: ``partial`` fills
        ``outlets`` with Airflow's default (``[]``) before ``__init__`` runs, so without this the
        mapped sends would emit no event on the ledger Asset."""
        if "outlets" not in kwargs:
            kwargs["outlets"] = _default_outlets(
                kwargs.get("dry_run", False),
                kwargs.get("ledger_conn_id", "sqlite_default"),
                kwargs.get("ledger_table", "sms_messages"),
            )
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    # ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self._defer_while_window_closed()
        return self.run_campaign(context)

    def execute_after_window(self, context: Context, event: Any = None) -> dict[str, Any]:
        # Checked again: a task that wakes late, after the window closed, waits for the next opening.
        self._defer_while_window_closed()
        return self.run_campaign(context)

    def _defer_while_window_closed(self) -> None:
        """With ``window_mode="defer"``, defer until the window opens in ``window_timezone``."""
        if self.window is None or self.window_mode != "defer" or self.dry_run:
            return
        opens = self.window.next_opening()
        if opens is not None:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            moment = pendulum.instance(opens)
            self.log.info("Outside the send window; deferring until %s", moment.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_window")

    def run_campaign(self, context: Context) -> dict[str, Any]:
        """Send the campaign now (no send-window deferral) and return its summary."""
        campaign_key = self.campaign_key or default_campaign_key(context)
        template = MessageTemplate(
            self.message,
            {
                "campaign_key": campaign_key,
                "ds": context.get("ds"),
                "logical_date": context.get("logical_date"),
                "params": context.get("params") or {},
            },
        )
        suppressed_numbers = self._suppression_set()
        ledger = None
        if not self.dry_run:
            ledger = MessageLedger(
                self.ledger_conn_id,
                self.ledger_table,
                gateway=self.hook.gateway,
                sms_conn_id=self.sms_conn_id,
            )
            ledger.ensure_table()
        gateway = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms-gateway")
        run = _CampaignRun(self, campaign_key, template, suppressed_numbers, ledger, gateway)
        try:
            with self._one_try_at_a_time(ledger, campaign_key):
                chunks = iter_chunks(
                    self.audience, sql=self.sql, sql_conn_id=self.sql_conn_id, chunk_size=self.chunk_size
                )
                for entries, bodies in prefetched(chunks, run.prepare):
                    run.deliver(entries, bodies)
        finally:
            gateway.shutdown(cancel_futures=True)
            if ledger is not None:
                ledger.close()
        summary = run.summary()
        self.log.info("Campaign %s: %s", campaign_key, summary)
        recipients = summary["input"] - summary["duplicates"]
        if recipients and summary["rejected"] / recipients > self.max_reject_ratio:
            raise SmsValidationError(
                f"{summary['rejected']} of {recipients} recipients were rejected "
                f"(more than max_reject_ratio={self.max_reject_ratio}); reasons are in the ledger table "
                f"{self.ledger_table!r} for campaign {campaign_key!r}"
            )
        return summary

    @contextmanager
    def _one_try_at_a_time(self, ledger: MessageLedger | None, campaign_key: str) -> Iterator[None]:
        """Hold the campaign's (and shard's) lock in the ledger's database while the run sends:
        a second try of it waits, then finds the work done instead of sending it again."""
        if ledger is None:
            yield
            return
        shard = f"{self.shard_index}/{self.shard_count}"
        try:
            with ledger.exclusive(
                f"campaign\x1f{campaign_key}\x1f{shard}",
                timeout=self.concurrent_run_timeout,
                waiting=f"another try of campaign {campaign_key!r} (shard {shard}) is sending",
            ):
                yield
        except SqlLockTimeout as exc:
            raise SmsConcurrentRunError(
                f"{exc}; it was not sent twice. Run it again once the other try has finished."
            ) from None

    # ---------------------------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the tables the audience query reads in; the ledger and the gateway's messages out."""
        from airflow_provider_sms.operators.lineage import (
            gateway_dataset_id,
            operator_lineage,
            sql_query_tables,
        )

        return operator_lineage(
            input_tables=sql_query_tables(self.sql, self.sql_conn_id),
            output_tables=[] if self.dry_run else [(self.ledger_conn_id, self.ledger_table)],
            outputs=[] if self.dry_run else [gateway_dataset_id(self.hook.gateway, self.hook.base_url)],
        )

    @cached_property
    def effective_batch_size(self) -> int:
        return min(self.batch_size or self.hook.batch_size, self.hook.batch_size)

    @cached_property
    def region(self) -> str | None:
        return self.default_region or self.hook.extra("default_region")

    def _suppression_set(self) -> set[str]:
        numbers = list(self.suppression_list or [])
        if self.suppression_sql:
            conn_id = self.suppression_conn_id or self.sql_conn_id
            if not conn_id:
                raise ValueError("suppression_sql needs suppression_conn_id (or sql_conn_id)")
            numbers += [row[0] for row in get_sql_hook(conn_id).get_records(self.suppression_sql)]
        suppressed = set()
        for raw in numbers:
            try:
                suppressed.add(normalize_phone(raw, self.region))
            except InvalidPhoneNumberError:
                self.log.warning("Ignoring an unreadable number in the suppression list")
        return suppressed

    @cached_property
    def window(self) -> SendWindow | None:
        """The send window (its ``clock`` is the wall clock; tests give it the sandbox's)."""
        return SendWindow(*self.send_window, timezone=self.window_timezone) if self.send_window else None

    def window_zone_for(self, row: Mapping[str, Any]) -> str | None:
        """The time zone of a row's send window (None without a window). Raises
        UnknownTimezoneError for a ``timezone_column`` name the tz database lacks."""
        if self.window is None:
            return None
        if self.timezone_column:
            return self.window.zone_of(row.get(self.timezone_column))
        return self.window.timezone

    def send_at_in(self, tz: str | None) -> datetime | None:
        """When to schedule a message to a recipient in ``tz`` (``window_zone_for``), asked as its
        batch leaves: the window's next opening there (UTC), or None to send now. Subclasses with
        their own schedule time override this (it replaces ``send_at_for(row)``, which was asked
        when the row was read)."""
        return None if tz is None or self.window is None else self.window.next_opening(tz)


class SmsConcurrentRunError(RuntimeError):
    """Another try of the same campaign held it for longer than ``concurrent_run_timeout``."""


class _NotSent(Exception):
    """A queued request that did not leave because an earlier one ended the run."""


@dataclass
class _Request:
    """A batch request handed to the gateway thread: its messages, when they were marked, its future."""

    messages: list[OutboundMessage]
    since: datetime
    future: Future


class _CampaignRun:
    """The state of one execution: counters, the recipients seen, the batches going out."""

    def __init__(
        self,
        op: SmsBulkSendOperator,
        campaign_key: str,
        template: MessageTemplate,
        suppressed: set[str],
        ledger: MessageLedger | None,
        gateway: ThreadPoolExecutor,
    ) -> None:
        self.op = op
        self.gateway = gateway  # the one thread that talks to the gateway
        self.halted = False  # set when a request failed in a way that ends the run
        self.log = op.log
        self.campaign_key = campaign_key
        self.template = template
        self.suppressed = suppressed
        self.ledger = ledger
        self.seen: set[str] = set()
        self.counts: Counter = Counter()  # outcomes, counted by the delivering thread
        self.read: Counter = Counter()  # input and duplicates, counted by the read-ahead thread
        self.segments = 0
        self.sample: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.last_progress = self.started
        self.recorded = 0

    # -- one chunk of input rows -------------------------------------------------------------------

    def prepare(self, chunk: pd.DataFrame) -> tuple[list[LedgerEntry], dict[str, tuple[str, str | None]]]:
        """Ledger entries and texts for one chunk of input rows (runs ahead, in the read-ahead thread)."""
        require_columns(list(chunk.columns), [self.op.phone_column], "the audience")
        self.template.check_columns(chunk.columns)
        entries: list[LedgerEntry] = []
        bodies: dict[str, tuple[str, str | None]] = {}
        for row in chunk.to_dict("records"):
            entry, body = self._prepare(row)
            if entry is not None:
                entries.append(entry)
                if body is not None:
                    bodies[entry.recipient] = body
        return entries, bodies

    def deliver(self, entries: list[LedgerEntry], bodies: dict[str, tuple[str, str | None]]) -> None:
        """Record one prepared chunk in the ledger and send what it still has to send."""
        if self.op.dry_run:
            for entry in entries:
                self.counts["would_send" if entry.state == PENDING else entry.state] += 1
                if entry.state == PENDING:
                    self.segments += entry.segments or 0
            self._progress()
            return
        inserted = self.ledger.record(self.campaign_key, entries)
        self._recorded(len(entries))
        recipients = [e.recipient for e in entries]
        # Rows an earlier try wrote win over this try's entries, so they are read back unless every
        # row was new; from here on ``current`` follows every write this run makes.
        if inserted == len(entries):
            current = {e.recipient: e for e in entries}
        else:
            current = self.ledger.load(self.campaign_key, recipients)
        self._settle_in_flight(current, bodies)
        self._send_pending([current[r] for r in recipients if current[r].state == PENDING], bodies, current)
        for recipient in recipients:
            row = current[recipient]
            self.counts[row.state] += 1
            if row.state in (ACCEPTED, PENDING, SENDING, AMBIGUOUS) and row.segments:
                self.segments += row.segments
        self._progress()

    def _recorded(self, rows: int) -> None:
        """Refresh the ledger's statistics as this run grows it by powers of ten (see ``analyze``)."""
        before, self.recorded = self.recorded, self.recorded + rows
        if len(str(self.recorded)) > len(str(before)) and self.recorded >= 1000:
            self.ledger.analyze()

    def _prepare(self, row: dict[str, Any]) -> tuple[LedgerEntry | None, tuple[str, str | None] | None]:
        """Normalise, de-duplicate, suppress and render one input row."""
        op = self.op
        self.read["input"] += 1
        position = int(row.pop("_row"))
        raw_phone = row.get(op.phone_column)
        try:
            recipient = normalize_phone(raw_phone, op.region)
        except InvalidPhoneNumberError as exc:
            if op.shard_count > 1 and position % op.shard_count != op.shard_index:
                self.read["input"] -= 1  # another shard records this reject
                return None, None
            key = f"invalid:{position}:{str(raw_phone)[:200]}"
            return LedgerEntry(
                key, REJECTED, idempotency_key(self.campaign_key, key), error=exc.reason, source_row=position
            ), None
        if op.shard_count > 1 and shard_of(recipient, op.shard_count) != op.shard_index:
            self.read["input"] -= 1
            return None, None
        if recipient in self.seen:
            self.read["duplicates"] += 1
            return None, None
        self.seen.add(recipient)
        key = idempotency_key(self.campaign_key, recipient)
        if recipient in self.suppressed or (
            op.unsubscribed_column in row and is_truthy(row[op.unsubscribed_column])
        ):
            return LedgerEntry(recipient, SUPPRESSED, key, error="opted out", source_row=position), None
        try:
            tz = op.window_zone_for(row)  # the schedule time itself is decided as the batch leaves
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
        entry = LedgerEntry(
            recipient, PENDING, key, body_hash=body_hash(body), segments=segments, source_row=position
        )
        return entry, (body, tz)

    # -- sending -----------------------------------------------------------------------------------

    def _message(self, entry: LedgerEntry, bodies) -> OutboundMessage:
        body, tz = bodies[entry.recipient]
        return OutboundMessage(
            to=entry.recipient,
            body=body,
            key=entry.idempotency_key,
            sender=self.op.sender,
            send_at=self.op.send_at_in(tz),
            options=self.op.message_options,
        )

    def _send_pending(self, entries: list[LedgerEntry], bodies, current: dict[str, LedgerEntry]) -> None:
        """Send ``entries``; what a lost answer left proven absent goes out again, a few rounds at most.

        One request is in flight while the previous one's outcome is written and the next batch is
        marked ``sending``: the ledger's writes overlap the gateway's round trip. A request leaves
        only after its rows are committed as ``sending``.
        """
        recipients = [e.recipient for e in entries]
        for _ in range(MAX_SEND_ROUNDS):
            in_flight: _Request | None = None
            try:
                for batch in chunked(entries, self.op.effective_batch_size):
                    messages = self._claim([self._message(e, bodies) for e in batch], current)
                    if not messages:
                        continue
                    since = current[messages[0].to].sent_at
                    request = _Request(messages, since, self.gateway.submit(self._send_batch, messages))
                    previous, in_flight = in_flight, request
                    if previous is not None:
                        self._settle(previous, current)
            except BaseException:
                if in_flight is not None:
                    self._settle_after_failure(in_flight, current)
                raise
            if in_flight is not None:
                self._settle(in_flight, current)
            entries = [current[r] for r in recipients if current[r].state == PENDING]
            if not entries:
                return
        raise SmsTransientError(
            f"{len(entries)} messages of campaign {self.campaign_key!r} are still unsent after "
            f"{MAX_SEND_ROUNDS} rounds of lost answers; they are pending in the ledger and a retry sends them"
        )

    def _claim(
        self, messages: list[OutboundMessage], current: dict[str, LedgerEntry]
    ) -> list[OutboundMessage]:
        """Claim the messages' rows as ``sending`` (committed before the request leaves) and return
        those this try claimed; a row another try took meanwhile is read back, not sent."""
        claims = []
        for m in messages:
            text = body_hash(m.body)
            changed = text != current[m.to].body_hash  # the template or the row changed since it was recorded
            claims.append(
                (m.to, text if changed else None, count_segments(m.body).segments if changed else None)
            )
        since, claimed = self.ledger.claim(self.campaign_key, claims)
        for recipient, text, segments in claims:
            if recipient in claimed:
                row = current[recipient]
                current[recipient] = replace(
                    row,
                    state=SENDING,
                    sent_at=since,
                    body_hash=text or row.body_hash,
                    segments=segments or row.segments,
                )
        taken = [m.to for m in messages if m.to not in claimed]
        if taken:
            self.log.warning(
                "%d rows were taken by another try of this campaign; not sending them", len(taken)
            )
            current.update(self.ledger.load(self.campaign_key, taken))
        return [m for m in messages if m.to in claimed]

    def _send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        """In the gateway thread: send, unless an earlier request failed in a way that ends the run
        (then nothing more leaves, as if the requests had been made one after the other)."""
        if self.halted:
            raise _NotSent
        try:
            return self.op.hook.send_batch(messages)
        except SmsAmbiguousSendError:
            raise  # settled batch by batch; the run goes on
        except BaseException:
            self.halted = True
            raise

    def _on_gateway(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call the hook in the gateway thread, behind any request in flight (one caller at a time)."""
        return self.gateway.submit(function, *args).result()

    def _mark(self, outcomes: list[Outcome], current: dict[str, LedgerEntry]) -> None:
        """Write outcomes to the ledger (one transaction) and keep ``current`` in step with it."""
        self.ledger.mark(self.campaign_key, outcomes)
        for recipient, state, message_id, _status, _raw, error in outcomes:
            current[recipient] = replace(current[recipient], state=state, message_id=message_id, error=error)

    def _mark_all(
        self, messages: list[OutboundMessage], state: str, error: str | None, current: dict[str, LedgerEntry]
    ) -> None:
        """Give every message of a request the same state (and reason), without a gateway id."""
        self._mark([(m.to, state, None, None, None, error) for m in messages], current)

    def _settle_after_failure(self, request: _Request, current: dict[str, LedgerEntry]) -> None:
        """The run is failing: keep the request from leaving if it still can, else record its outcome.
        Whatever goes wrong here is logged; the first failure is the one raised."""
        try:
            self.halted = True
            if request.future.cancel():  # never left: provably not sent
                self._mark_all(request.messages, PENDING, None, current)
            else:
                self._settle(request, current)
        except Exception as exc:
            self.log.warning("A batch in flight when the run failed failed too: %s", exc)

    def _settle(self, request: _Request, current: dict[str, LedgerEntry]) -> None:
        """Record the outcome of a request: its results, or what a failure proves about its messages."""
        messages, since = request.messages, request.since
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
            raise AirflowFailException(
                f"{exc}; {len(messages)} messages of campaign {self.campaign_key!r} were not sent and stay "
                "pending in the ledger: fix the connection or the message, then run the campaign again"
            ) from exc
        except SmsGatewayError as exc:  # the gateway answered with a refusal, or nothing left: not stored
            self._mark_all(messages, PENDING, str(exc), current)
            raise
        except _NotSent:  # an earlier request ended the run before this one left
            self._mark_all(messages, PENDING, None, current)
            return
        self._mark(
            [
                (
                    r.message.to,
                    ACCEPTED if r.accepted else REJECTED,
                    r.message_id,
                    str(r.status) if r.accepted else None,
                    None,
                    None if r.accepted else (r.error or "rejected by the gateway"),
                )
                for r in results
            ],
            current,
        )

    def _look_up(
        self, messages: list[OutboundMessage], since: datetime, current: dict[str, LedgerEntry]
    ) -> None:
        """Decide the fate of messages whose answer was lost: found at the gateway → accepted; proven
        absent by a look-up that worked → pending (sent again). When the look-up itself fails nothing
        is proven: the rows become ``ambiguous`` (a later try looks again), or pending with
        ``resend_ambiguous``."""
        try:
            found = self._on_gateway(self.op.hook.find_sent, messages, since - CLOCK_SKEW)
        except SmsGatewayError as exc:
            state = PENDING if self.op.resend_ambiguous else AMBIGUOUS
            self.log.warning("Look-up failed (%s); %d messages are %s", exc, len(messages), state)
            self._mark_all(messages, state, str(exc), current)
            return
        outcomes: list[Outcome] = []
        for m in messages:
            report = found.get(m.key)
            if report is not None:
                outcomes.append(
                    (m.to, ACCEPTED, report.message_id, str(report.status), report.raw_status, None)
                )
            else:
                outcomes.append((m.to, PENDING, None, None, None, None))
        self._mark(outcomes, current)
        self.log.info(
            "Look-up: %d of %d found at the gateway, the rest proven absent", len(found), len(messages)
        )

    def _settle_in_flight(self, current: dict[str, LedgerEntry], bodies) -> None:
        """Rows an earlier try left ``sending`` (a crash mid-request) or ``ambiguous``: look them up first."""
        in_flight = [e for e in current.values() if e.state in (SENDING, AMBIGUOUS) and e.recipient in bodies]
        if in_flight:
            self.log.info("%d messages were in flight in an earlier try; looking them up", len(in_flight))
        for batch in chunked(in_flight, 500):
            since = min((as_datetime(e.sent_at) for e in batch if e.sent_at), default=None)
            # Matched by the text that was sent then (its hash), not by what this try would send.
            messages = [replace(self._message(e, bodies), sent_hash=e.body_hash) for e in batch]
            self._look_up(messages, since or utcnow() - timedelta(days=1), current)

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
            "ledger_table": self.op.ledger_table,
            "input": c["input"],
            "accepted": c[ACCEPTED],
            "rejected": c[REJECTED],
            "suppressed": c[SUPPRESSED],
            "duplicates": c["duplicates"],
            "ambiguous": c[AMBIGUOUS] + c[SENDING] + c[PENDING],
            "segments": self.segments,
        }
        if self.op.dry_run:
            summary["dry_run"] = True
            summary["would_send"] = c["would_send"]
            summary["sample"] = self.sample
            if self.op.cost_per_segment is not None:
                summary["estimated_cost"] = round(self.segments * self.op.cost_per_segment, 4)
        return summary


def default_campaign_key(context: Context) -> str:
    """``<dag_id>.<task_id>.<logical date or run id>``: stable across retries of one run."""
    ti = context["ti"]
    moment = context.get("logical_date")
    suffix = moment.isoformat() if moment else context.get("run_id")
    return f"{ti.dag_id}.{ti.task_id}.{suffix}"


def _clean(value: Any) -> Any:
    """Missing values render as empty text, not as "nan"."""
    if value is None:
        return ""
    try:
        return "" if pd.isna(value) else value
    except (TypeError, ValueError):
        return value
