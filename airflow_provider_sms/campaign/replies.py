"""Replies into the warehouse, and the opt-outs they carry into the opt-out table.

One run reads a gateway's inbound messages from where the last run stopped, stores each new one in
the replies table (``storage/replies.py``) with its keyword verdict (``campaign/keywords.py``) and
the campaign it answers, and turns new STOP and START replies into events of the opt-out table
(``storage/opt_outs.py``); where the gateway keeps an opt-out list of its own, that list too.
Airflow-free: the operator is :class:`~airflow_provider_sms.operators.replies.SmsRepliesOperator`.

Decisions (docs/opt-outs.md, "Replies and opt-outs", says the same):

- **Where a run starts**: the newest ``received_at`` the replies table holds for the gateway and
  connection, less ``overlap`` (default :data:`~airflow_provider_sms.messages.CLOCK_SKEW`) for
  replies a gateway lists late; nothing stored yet: everything the gateway lists. Replies read again
  are recognised by ``(gateway, message_id)`` and skipped: a reply is stored, classified and acted
  on once.
- **Opt-outs before the rows**: a batch's events are recorded before its replies are inserted, so a
  run that dies between the two repeats the (idempotent) events on the next run instead of leaving a
  stored STOP that never opted anyone out.
- **A reply without a time** (the gateway gave none that can be read) is stored with
  ``received_at`` NULL. Its STOP counts from the moment it was read (an opt-out must not wait); its
  START is not applied (a wrong START puts back a number that asked to be left alone): it is kept,
  its reason says so, for a person.
- **A sender that is not a phone number** (a short code, a sender id) makes no event.
- **The gateway's opt-out list** (``capabilities.opt_out_list``, Smstools) is read after the
  replies. A dated entry is an event at its date (the newer event of a number wins, as for
  replies). An undated entry counts from the first run that finds the number on the list while the
  table does not hold it as opted out; a number the table already holds as opted out keeps its date.
- **AMBIGUOUS** replies change nothing: they are stored with ``intent = 'ambiguous'`` for a person.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.campaign.keywords import ReplyIntent, ReplyVerdict, classify_reply
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    InboundMessage,
    InvalidPhoneNumberError,
    OptOutEvent,
    as_utc,
    normalize_phone,
)
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.replies import LedgerMatcher, ReplyRow, ReplyTable
from airflow_provider_sms.storage.table import utcnow

BATCH_SIZE = 1_000
# A reply dated up to this long before the ledger's send time still answers that message: some
# gateways write times to the second. No more: a later campaign sent just after a reply must not
# take it, and nobody reads and answers a text within a second of its sending.
MATCH_TOLERANCE = timedelta(seconds=1)
REPLY, GATEWAY_LIST = "reply", "gateway list"
log = logging.getLogger(__name__)


@dataclass
class RepliesRead:
    """What one run did. ``opted_out`` / ``resubscribed``: numbers the run moved into or out of the
    opt-out table (from replies and the gateway's list); ``not_applied``: STOP or START replies
    that made no event (no phone number, or a START without a time)."""

    gateway: str
    since: datetime | None = None
    read: int = 0
    new: int = 0
    by_intent: Counter = field(default_factory=Counter)
    matched: int = 0
    opted_out: int = 0
    resubscribed: int = 0
    not_applied: int = 0
    gateway_list: int | None = None  # entries read from the gateway's list; None: not read

    def as_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "since": self.since.isoformat() if self.since else None,
            "read": self.read,
            "new": self.new,
            "by_intent": {intent.value: self.by_intent[intent.value] for intent in ReplyIntent},
            "matched": self.matched,
            "opted_out": self.opted_out,
            "resubscribed": self.resubscribed,
            "not_applied": self.not_applied,
            "gateway_list": self.gateway_list,
        }


@dataclass
class ReplyIntake:
    """Read ``hook``'s replies into ``replies_table`` (on ``replies_conn_id``); record opt-outs in
    ``opt_out_table`` (on ``opt_out_conn_id``; None: store replies only); tie replies to campaigns
    through ``ledger_table`` (on ``ledger_conn_id``; None: no matching)."""

    hook: SmsGatewayHook
    conn_id: str
    replies_conn_id: str
    replies_table: str = "sms_replies"
    opt_out_conn_id: str | None = None
    opt_out_table: str | None = "sms_opt_outs"
    ledger_conn_id: str | None = None
    ledger_table: str | None = "sms_messages"
    overlap: timedelta = CLOCK_SKEW
    gateway_opt_outs: bool = True
    batch_size: int = BATCH_SIZE
    lock_timeout: float = 900.0
    log: logging.Logger | logging.LoggerAdapter = log

    def run(self, since: datetime | None = None) -> RepliesRead:
        """One run: replies since ``since`` (default: where the last run stopped, less ``overlap``),
        then the gateway's opt-out list. Runs of one gateway and connection take turns (a lock in
        the replies table's database)."""
        gateway = self.hook.gateway
        if since is not None:
            since = as_utc(since)  # a naive time is UTC, as the hooks read it
        with ExitStack() as stack:
            table = ReplyTable(self.replies_conn_id, self.replies_table)
            stack.callback(table.close)
            table.ensure()
            opt_outs = matcher = None
            if self.opt_out_table:
                opt_outs = OptOutTable(self.opt_out_conn_id or self.replies_conn_id, self.opt_out_table)
                stack.callback(opt_outs.close)
                opt_outs.ensure()
            if self.ledger_table:
                matcher = LedgerMatcher(self.ledger_conn_id or self.replies_conn_id, self.ledger_table)
                stack.callback(matcher.close)
                matcher = matcher if matcher.ready() else None
            stack.enter_context(
                table.exclusive(
                    f"replies {gateway} {self.conn_id}",
                    timeout=self.lock_timeout,
                    waiting=f"another run reading {gateway} replies through {self.conn_id!r}",
                )
            )
            if since is None:
                newest = table.newest(gateway, self.conn_id)
                since = newest - self.overlap if newest else None
            done = RepliesRead(gateway, since)
            self.log.info(
                "Reading %s replies through %s since %s into %s",
                gateway,
                self.conn_id,
                since.isoformat() if since else "the first one listed",
                self.replies_table,
            )
            for batch in chunked(self.hook.iter_replies(since), self.batch_size):
                self._batch(batch, table, opt_outs, matcher, done)
            if opt_outs is not None and self.gateway_opt_outs and self.hook.capabilities.opt_out_list:
                done.gateway_list = 0
                for entries in chunked(self.hook.iter_gateway_opt_outs(), self.batch_size):
                    self._gateway_list(entries, opt_outs, done)
        self.log.info("Replies: %s", done.as_dict())
        return done

    def _batch(
        self,
        batch: list[InboundMessage],
        table: ReplyTable,
        opt_outs: OptOutTable | None,
        matcher: LedgerMatcher | None,
        done: RepliesRead,
    ) -> None:
        done.read += len(batch)
        unique: dict[str, InboundMessage] = {}
        for reply in batch:
            unique.setdefault(reply.message_id, reply)  # a reply listed twice: the first listing
        known = table.known(done.gateway, list(unique))
        fresh = [reply for message_id, reply in unique.items() if message_id not in known]
        if not fresh:
            return
        now = utcnow()
        verdicts = {reply.message_id: classify_reply(reply.text) for reply in fresh}
        numbers = {reply.message_id: _phone(reply.sender) for reply in fresh}
        matches: dict[str, tuple[str, str | None]] = {}
        if matcher is not None:
            latest = [
                (r.message_id, numbers[r.message_id], (r.received_at or now) + MATCH_TOLERANCE)
                for r in fresh
                if numbers[r.message_id]
            ]
            matches = matcher.last_sent(done.gateway, latest)
        skipped: dict[str, str] = {}
        if opt_outs is not None:
            events, skipped = self._events(fresh, verdicts, numbers, now)
            self._record(opt_outs, events, done)
        rows = [
            ReplyRow(
                gateway=done.gateway,
                message_id=r.message_id,
                conn_id=self.conn_id,
                sender=r.sender,
                recipient=r.recipient,
                text=r.text,
                received_at=r.received_at,
                intent=verdicts[r.message_id].intent.value,
                keyword=verdicts[r.message_id].keyword,
                language=verdicts[r.message_id].language,
                reason=_reason(verdicts[r.message_id], skipped.get(r.message_id)),
                campaign_key=matches.get(r.message_id, (None, None))[0],
                matched_message_id=matches.get(r.message_id, (None, None))[1],
            )
            for r in fresh
        ]
        inserted = table.insert(rows)
        done.new += len(inserted)
        done.by_intent.update(row.intent for row in rows if row.message_id in inserted)
        done.matched += sum(1 for row in rows if row.message_id in inserted and row.campaign_key)
        done.not_applied += sum(1 for message_id in skipped if message_id in inserted)

    def _events(
        self,
        fresh: list[InboundMessage],
        verdicts: dict[str, ReplyVerdict],
        numbers: dict[str, str | None],
        now: datetime,
    ) -> tuple[list[OptOutEvent], dict[str, str]]:
        """The opt-out events of the STOP and START replies, and why the others made none."""
        events: list[OptOutEvent] = []
        skipped: dict[str, str] = {}
        for reply in fresh:
            verdict = verdicts[reply.message_id]
            if verdict.intent not in (ReplyIntent.STOP, ReplyIntent.START):
                continue
            phone = numbers[reply.message_id]
            stop = verdict.intent is ReplyIntent.STOP
            if phone is None:
                skipped[reply.message_id] = "the sender is not a phone number"
            elif reply.received_at is None and not stop:
                skipped[reply.message_id] = "the gateway gave no time, so its order against a STOP is unknown"
            else:
                events.append(
                    OptOutEvent(
                        phone,
                        stop,
                        reply.received_at or now,
                        gateway=self.hook.gateway,
                        source=REPLY,
                        source_reply_id=reply.message_id,
                        keyword=verdict.keyword,
                    )
                )
        return events, skipped

    def _gateway_list(
        self, entries: list[tuple[str, datetime | None]], opt_outs: OptOutTable, done: RepliesRead
    ) -> None:
        done.gateway_list = (done.gateway_list or 0) + len(entries)
        dated: dict[str, datetime] = {}
        undated: set[str] = set()
        for raw, since in entries:
            phone = _phone(raw)
            if phone is None:
                self.log.warning(
                    "The %s opt-out list names %r, which is not a phone number", done.gateway, raw
                )
            elif since is None:
                undated.add(phone)
            else:
                dated[phone] = min(since, dated.get(phone, since))
        now = utcnow()
        undated -= opt_outs.opted_out(undated) if undated else set()
        events = [
            OptOutEvent(p, True, at, gateway=done.gateway, source=GATEWAY_LIST) for p, at in dated.items()
        ]
        events += [OptOutEvent(p, True, now, gateway=done.gateway, source=GATEWAY_LIST) for p in undated]
        self._record(opt_outs, events, done)

    @staticmethod
    def _record(opt_outs: OptOutTable, events: Iterable[OptOutEvent], done: RepliesRead) -> None:
        """Record ``events``, counting the numbers they moved into and out of the opt-out list."""
        events = list(events)
        if not events:
            return
        numbers = {event.phone for event in events}
        before = opt_outs.opted_out(numbers)
        opt_outs.record(events)
        after = opt_outs.opted_out(numbers)
        done.opted_out += len(after - before)
        done.resubscribed += len(before - after)


def _phone(raw: str | None) -> str | None:
    """``raw`` in E.164, or None when it is not a phone number (a sender id, a short code)."""
    try:
        return normalize_phone(raw) if raw and str(raw).startswith("+") else None
    except InvalidPhoneNumberError:
        return None


def _reason(verdict: ReplyVerdict, skipped: str | None) -> str:
    return f"{verdict.reason}; not applied: {skipped}" if skipped else verdict.reason
