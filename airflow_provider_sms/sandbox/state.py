"""In-memory state of a sandbox server: clock, messages, replies, contacts, lists, tokens, balances.

All reads and writes happen on the server's event loop (handlers never block), so no locks are
needed. Every write goes through a ``SandboxState`` method, which keeps the derived indexes right
and records which rows changed, so ``persistence.py`` can snapshot only those.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import timezone
from operator import attrgetter
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from airflow_provider_sms.sandbox import delivery, replies
from airflow_provider_sms.sandbox.config import DEVICE_IDS, SandboxConfig
from airflow_provider_sms.sandbox.ordered import InOrder, OrderedRows, SortedRows, Window
from airflow_provider_sms.sandbox.validation import UTC, zone

GATEWAYS = ("smstools", "smsgateway24", "textboost")
BILLED_GATEWAYS = ("smstools", "textboost")  # SmsGateway24 sends from the user's own phone
SCHEMA_VERSION = 1
YEAR = 365.25 * 86_400
# One advance may skip at most 10 years, the clock at most 100 years past real time: far enough for
# any scheduling test, and far from year 9999, where rendering a date would fail on every request.
MAX_ADVANCE = 10 * YEAR
MAX_OFFSET = 100 * YEAR
# Ids are reserved durably this many at a time (one small synchronous write per block).
ID_BLOCK = 1000
# The account's own number at the two gateways with one: replies to a message from a sender id
# (which a phone cannot answer) arrive there. Smstools' is one of its registered sender ids.
ACCOUNT_NUMBERS = {"smstools": "+3197010240000", "textboost": "+3197010250000"}
SIMULATED, INJECTED = "simulated", "injected"


class SandboxClock:
    """Real time plus an offset that ``advance`` grows; optionally frozen at start-up time."""

    def __init__(self, frozen: bool = False) -> None:
        self.frozen_at_start = frozen
        self.frozen = frozen
        self._base = time.time() if frozen else None
        self.offset = 0.0

    def set_frozen(self, frozen: bool) -> None:
        """Stop (or restart) the clock where it stands: ``now()`` does not jump either way."""
        now = self.now()
        self.frozen = frozen
        self._base = now if frozen else None
        self.offset = 0.0 if frozen else now - time.time()

    def now(self) -> float:
        return (self._base if self._base is not None else time.time()) + self.offset

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``; ``ValueError`` (nothing moves) unless 0 <= seconds <= 10 years
        and the clock stays within 100 years of real time."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number of at least 0, got {seconds}")
        if seconds > MAX_ADVANCE:
            raise ValueError(f"seconds must be at most {MAX_ADVANCE:.0f} (10 years), got {seconds:g}")
        if self.offset + seconds > MAX_OFFSET:
            raise ValueError(
                f"the sandbox clock may run at most {MAX_OFFSET:.0f} s (100 years) ahead; it is "
                f"{self.offset:.0f} s ahead now (POST /_sandbox/reset sets it back)"
            )
        self.offset += seconds

    def set_now(self, ts: float) -> None:
        """Make ``now()`` return ``ts`` (used when restoring a frozen clock)."""
        self.offset = ts - (self._base if self._base is not None else time.time())

    def reset(self) -> None:
        """Back to real time, frozen or running as at start-up."""
        self.offset = 0.0
        self.frozen = self.frozen_at_start
        self._base = time.time() if self.frozen else None


@dataclass(slots=True)
class Message:
    """One accepted message to one recipient; its status is computed, never stored."""

    gateway: str
    id: str | int  # the gateway's own id: Smstools messageid, SmsGateway24 sms_id, TextBoost uid
    seq: int  # server-wide sequence, also Smstools' numeric "ID"
    recipient: str  # canonical E.164 with "+"
    body: str
    created_at: float  # sandbox epoch seconds
    send_at: float  # when delivery starts: the scheduled time, or created_at
    segments: int = 1
    sender: str | None = None
    reference: str | None = None  # Smstools reference / SmsGateway24 customerid
    kind: str = "sms"  # Smstools sms/voice, TextBoost plain/voice/mms/...
    schedule: str | None = None  # the schedule time as the client wrote it
    extra: dict[str, Any] | None = None  # gateway specifics: device_id, sim, paket, campaign, subid...


def outcome_of(message: Message) -> str | None:
    """The outcome a message was given at submission (a number accepted but not deliverable: failed),
    else None: the recipient decides (:func:`delivery.outcome_for`)."""
    return delivery.FAILED if (message.extra or {}).get("undeliverable") else None


@dataclass(slots=True)
class Reply:
    """A message a gateway account received: a simulated reply to an SMS, or one injected through
    ``POST /_sandbox/replies``. Listed by the gateway once the clock reaches ``received_at``."""

    gateway: str
    seq: int  # sequence "reply"; each gateway renders its own id from it
    sender: str  # the phone that wrote, canonical E.164 with "+"
    recipient: str | None  # our side: the number (E.164) or sender id written to; SmsGateway24: the device id
    text: str
    received_at: float  # sandbox epoch seconds
    origin: str  # SIMULATED or INJECTED
    in_reply_to: str | None = None  # key of the message a simulated reply answers
    extra: dict[str, Any] | None = None  # SmsGateway24 device_id and sim; the language of a simulated reply


@dataclass(slots=True)
class Contact:
    """A contact in a list (Smstools group, SmsGateway24 tag, TextBoost contact group)."""

    gateway: str
    id: str | int
    list_id: str | int
    phone: str  # canonical E.164 with "+"
    created_at: float
    updated_at: float
    first_name: str | None = None
    last_name: str | None = None
    fields: dict[str, Any] | None = None  # other fields: Smstools extras/birthday, SmsGateway24 fullname


@dataclass(slots=True)
class Group:
    """A contact list (Smstools group, SmsGateway24 tag, TextBoost contact group)."""

    gateway: str
    id: str | int
    name: str
    created_at: float
    updated_at: float


def _created_at(message: Message) -> float:
    return message.created_at


# A reply's place in its gateway's arrival order: the time, then the sequence for equal times
# (unique: every reply of the sandbox takes the next number of one sequence).
_arrival = attrgetter("received_at", "seq")


Row = TypeVar("Row")
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in (Message, Reply, Contact, Group)}


class Table(Generic[Row]):
    """An insertion-ordered ``key → row`` mapping that remembers the keys changed since the last snapshot.

    Lists read it through :meth:`ordered` (or :meth:`between`), which reach a page by position.
    """

    __slots__ = ("dirty", "rows", "track")

    def __init__(self, track: bool, order_key: Callable[[Row], Any] | None = None) -> None:
        self.rows: OrderedRows[str, Row] = OrderedRows(order_key=order_key)
        self.dirty: set[str] = set()
        self.track = track

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: str) -> Row | None:
        return self.rows.get(key)

    def put(self, key: str, row: Row) -> None:
        self.rows[key] = row
        if self.track:
            self.dirty.add(key)

    def touch(self, key: str) -> None:
        if self.track:
            self.dirty.add(key)

    def pop(self, key: str) -> Row | None:
        row = self.rows.pop(key, None)
        if row is not None and self.track:
            self.dirty.add(key)
        return row

    def ordered(self) -> Sequence[Row]:
        """The rows in insertion order, as a sequence whose slices cost their length."""
        return self.rows.in_order()

    def between(self, low: Any = None, high: Any = None) -> Sequence[Row]:
        """The rows whose order key (a message's ``created_at``) is within ``[low, high]``, in order;
        every row when they were not added in that order: the caller filters them anyway."""
        return self.rows.between(low, high)


@dataclass
class SnapshotBatch:
    """What changed since the last snapshot, ready for ``SqliteStore.write``."""

    meta: dict[str, Any]
    upserts: list[tuple[str, str, str]]
    deletes: list[tuple[str, str]]
    wipe: bool


class SandboxState:
    """The sandbox's data and the operations the gateway routers perform on it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = SandboxClock(config.frozen_clock)
        track = config.state_file is not None
        self.messages: dict[str, Table[Message]] = {gw: Table(track, _created_at) for gw in GATEWAYS}
        self.contacts: dict[str, Table[Contact]] = {gw: Table(track) for gw in GATEWAYS}
        self.groups: dict[str, Table[Group]] = {gw: Table(track) for gw in GATEWAYS}
        self.newsletters: dict[str, Table[dict[str, Any]]] = {gw: Table(track) for gw in GATEWAYS}
        self.replies: dict[str, Table[Reply]] = {gw: Table(track) for gw in GATEWAYS}
        self.reply_rate = config.reply_rate
        self.reply_seconds = config.reply_seconds
        # Id sequences survive reset() on purpose: an id never names two different messages.
        self.sequences: Counter[str] = Counter()
        # With a state file: per sequence, the last id of the block written to the file as reserved
        # (by ``reserve_ids``) before any of its ids was handed out.
        self.reserved: dict[str, int] = {}
        self.reserve_ids: Callable[[dict[str, int]], None] | None = None
        self.tokens: dict[str, float] = {}
        self.balance = {gw: float(config.balance) for gw in BILLED_GATEWAYS}
        self.spent = {gw: 0.0 for gw in BILLED_GATEWAYS}
        self.requests: Counter[tuple[str, str]] = Counter()  # (gateway, "METHOD /path") → count
        self.timezones = dict.fromkeys(GATEWAYS, config.timezone)  # each account's own setting
        self.version = 0  # bumped by every change; the autosave compares it
        self._wipe = False
        self._clear_indexes()

    def _clear_indexes(self) -> None:
        self.arrivals: Counter[tuple[str, str, str]] = Counter()  # (gateway, recipient, body)
        self.contact_arrivals: Counter[tuple[str, str, str]] = Counter()  # (gateway, list id, phone)
        # (gateway, list id) → contact key → contact, in the order they were added or last changed
        self.members: defaultdict[tuple[str, str], OrderedRows[str, Contact]] = defaultdict(OrderedRows)
        self.by_customerid: defaultdict[str, list[str]] = defaultdict(list)
        self.scheduled: dict[str, dict[str, None]] = {gw: {} for gw in GATEWAYS}
        self.repliers: set[tuple[str, str]] = set()  # (gateway, number) with a simulated reply
        self.reply_of: dict[tuple[str, str], str] = {}  # (gateway, message key) → its reply's key
        # Per gateway, the replies by arrival (received_at, seq): which have arrived is a bisection,
        # a page of them a slice.
        self.reply_order: dict[str, SortedRows[Reply]] = {gw: SortedRows(_arrival) for gw in GATEWAYS}

    # ------------------------------------------------------------------ clock, ids, accounts
    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.version += 1

    def set_frozen(self, frozen: bool) -> None:
        self.clock.set_frozen(frozen)
        self.version += 1

    def zone(self, gateway: str) -> ZoneInfo | timezone:
        """The timezone of the gateway's account: its schedule and date fields are in it."""
        return zone(self.timezones[gateway]) or UTC

    def set_timezone(self, name: str, gateway: str | None = None) -> None:
        """Set the timezone of one account (all three when ``gateway`` is None); ``ValueError`` if unknown."""
        if zone(name) is None:
            raise ValueError(f"unknown timezone {name!r}: use an IANA name such as Europe/Berlin")
        for gw in (gateway,) if gateway else GATEWAYS:
            self.timezones[gw] = name
        self.version += 1

    def next_seq(self, name: str) -> int:
        """The next number of sequence ``name``; with a state file, never one handed out before.

        Snapshots run every ``save_interval``, so a crash (SIGKILL) loses the last ids handed out.
        Hence the file holds a high-water mark written *before* ids are handed out: a restart resumes
        after it, and an id a client was given can never come back naming another message.
        """
        seq = self.sequences[name] + 1
        if self.reserve_ids is not None and seq > self.reserved.get(name, 0):
            reserved = {**self.reserved, name: seq + ID_BLOCK - 1}
            self.reserve_ids(reserved)  # raises (and nothing is handed out) if it cannot be written
            self.reserved = reserved
        self.sequences[name] = seq
        self.version += 1
        return seq

    def issue_token(self) -> str:
        now = self.now()
        if len(self.tokens) > 10_000:  # keep a long benchmark from growing this without bound
            self.tokens = {token: exp for token, exp in self.tokens.items() if exp > now}
        token = secrets.token_hex(16)
        self.tokens[token] = now + self.config.token_ttl
        self.version += 1
        return token

    def token_valid(self, token: object) -> bool:
        return isinstance(token, str) and self.tokens.get(token, float("-inf")) > self.now()

    def expire_tokens(self) -> None:
        self.tokens.clear()
        self.version += 1

    def charge(self, gateway: str, units: float) -> bool:
        """Take ``units`` from the gateway's balance; False (nothing taken) if it does not cover them."""
        if self.balance[gateway] + 1e-9 < units:
            return False
        self.balance[gateway] -= units
        self.spent[gateway] += units
        self.version += 1
        return True

    # ------------------------------------------------------------------ messages
    def add_message(self, message: Message) -> None:
        key = str(message.id)
        self.messages[message.gateway].put(key, message)
        self._index_message(key, message)
        self._simulate_reply(key, message)
        self.version += 1

    def _index_message(self, key: str, message: Message) -> None:
        self.arrivals[(message.gateway, message.recipient, message.body)] += 1
        if message.send_at > message.created_at:
            self.scheduled[message.gateway][key] = None
        if message.reference is not None and message.gateway == "smsgateway24":
            self.by_customerid[message.reference].append(key)

    def remove_message(self, gateway: str, key: str) -> Message | None:
        message = self.messages[gateway].pop(key)
        if message is None:
            return None
        arrival = (gateway, message.recipient, message.body)
        self.arrivals[arrival] -= 1
        if self.arrivals[arrival] <= 0:
            del self.arrivals[arrival]
        self.scheduled[gateway].pop(key, None)
        if message.reference is not None and key in self.by_customerid.get(message.reference, ()):
            self.by_customerid[message.reference].remove(key)
        reply_key = self.reply_of.pop((gateway, key), None)
        if reply_key is not None:  # a cancelled message gets no answer
            reply = self.replies[gateway].pop(reply_key)
            if reply is not None:
                self.repliers.discard((gateway, reply.sender))
                self.reply_order[gateway].remove(reply)
        self.version += 1
        return message

    def status(self, message: Message, now: float) -> str | int:
        """The gateway's raw status of ``message`` at ``now``."""
        return delivery.raw_status(
            message.gateway,
            message.recipient,
            message.send_at,
            now,
            self.config.delivery_seconds,
            outcome_of(message),
        )

    def normalized(self, message: Message, raw: str | int, now: float) -> str:
        return delivery.normalize(message.gateway, raw, scheduled=now < message.send_at)

    def iter_messages(self, gateway: str | None = None) -> Iterator[Message]:
        for gw in (gateway,) if gateway else GATEWAYS:
            yield from self.messages[gw].rows.values()

    # ------------------------------------------------------------------ replies
    def _simulate_reply(self, key: str, message: Message) -> None:
        """Store the reply the recipient of a new SMS sends (see ``replies.py``), if any: the first
        SMS delivered to a number at a gateway gets it, dated after its delivery."""
        if (
            self.reply_rate <= 0
            or message.kind == "voice"
            or outcome_of(message) is not None
            or (message.gateway, message.recipient) in self.repliers
            or delivery.outcome_for(message.recipient) != delivery.DELIVERED
        ):
            return
        simulated = replies.simulated_reply(message.recipient, self.reply_rate)
        if simulated is None:
            return
        delivered = message.send_at + max(self.config.delivery_seconds, 0.0)
        extra: dict[str, Any] = {"language": simulated.language}
        if message.gateway == "smsgateway24":
            device = (message.extra or {}).get("device_id", DEVICE_IDS[0])
            extra.update(device_id=device, sim=(message.extra or {}).get("sim", 0))
            recipient: str | None = str(device)
        elif message.sender and message.sender.lstrip("+").isdigit():
            recipient = message.sender
        else:
            recipient = ACCOUNT_NUMBERS[message.gateway]
        self.add_reply(
            Reply(
                gateway=message.gateway,
                seq=self.next_seq("reply"),
                sender=message.recipient,
                recipient=recipient,
                text=simulated.text,
                received_at=delivered + simulated.delay * max(self.reply_seconds, 0.0),
                origin=SIMULATED,
                in_reply_to=key,
                extra=extra,
            )
        )

    def add_reply(self, reply: Reply) -> None:
        key = str(reply.seq)
        self.replies[reply.gateway].put(key, reply)
        self._index_reply(key, reply)
        self.reply_order[reply.gateway].add(reply)
        self.version += 1

    def _index_reply(self, key: str, reply: Reply) -> None:
        if reply.origin == SIMULATED:
            self.repliers.add((reply.gateway, reply.sender))
            if reply.in_reply_to is not None:
                self.reply_of[(reply.gateway, reply.in_reply_to)] = key

    def arrived_replies(self, gateway: str, now: float) -> Window[Reply]:
        """The gateway's replies the clock has reached, oldest first (``received_at``, then ``seq``),
        as a view whose slices cost their length."""
        order = self.reply_order[gateway]
        return order.window(0, order.count_below((now, math.inf)))

    def replies_between(self, gateway: str, low: float | None, high: float) -> Window[Reply]:
        """The gateway's replies received from ``low`` (None: the first) to ``high``, both included,
        oldest first; found by bisection."""
        return self.reply_order[gateway].between(None if low is None else (low, -math.inf), (high, math.inf))

    def set_reply_simulation(self, rate: float | None = None, seconds: float | None = None) -> None:
        """Change the share of recipients who reply and the reply delay, for messages sent from now
        on (replies already stored stay); ``ValueError`` when out of range."""
        rate = self.reply_rate if rate is None else rate
        seconds = self.reply_seconds if seconds is None else seconds
        replies.check_simulation(rate, seconds)
        self.reply_rate, self.reply_seconds = float(rate), float(seconds)
        self.version += 1

    # ------------------------------------------------------------------ lists and contacts
    def add_group(self, group: Group) -> None:
        self.groups[group.gateway].put(str(group.id), group)
        self.version += 1

    def rename_group(self, group: Group, name: str) -> None:
        group.name = name
        group.updated_at = self.now()
        self.groups[group.gateway].touch(str(group.id))
        self.version += 1

    def remove_group(self, gateway: str, key: str) -> Group | None:
        group = self.groups[gateway].pop(key)
        if group is not None:
            for contact_key in list(self.members.get((gateway, key), ())):
                self.remove_contact(gateway, contact_key)
            self.members.pop((gateway, key), None)
            self.version += 1
        return group

    def add_contact(self, contact: Contact) -> None:
        key = str(contact.id)
        self.contacts[contact.gateway].put(key, contact)
        self._index_contact(key, contact)
        self.version += 1

    def _index_contact(self, key: str, contact: Contact) -> None:
        list_key = str(contact.list_id)
        self.members[(contact.gateway, list_key)][key] = contact
        self.contact_arrivals[(contact.gateway, list_key, contact.phone)] += 1

    def _unindex_contact(self, key: str, contact: Contact) -> None:
        list_key = str(contact.list_id)
        self.members.get((contact.gateway, list_key), {}).pop(key, None)
        arrival = (contact.gateway, list_key, contact.phone)
        self.contact_arrivals[arrival] -= 1
        if self.contact_arrivals[arrival] <= 0:
            del self.contact_arrivals[arrival]

    def update_contact(self, contact: Contact, **changes: Any) -> None:
        """Change attributes of a stored contact (moving it between lists if ``list_id`` changes)."""
        key = str(contact.id)
        self._unindex_contact(key, contact)
        for name, value in changes.items():
            setattr(contact, name, value)
        contact.updated_at = self.now()
        self._index_contact(key, contact)
        self.contacts[contact.gateway].touch(key)
        self.version += 1

    def remove_contact(self, gateway: str, key: str) -> Contact | None:
        contact = self.contacts[gateway].pop(key)
        if contact is not None:
            self._unindex_contact(key, contact)
            self.version += 1
        return contact

    def members_of(self, gateway: str, list_id: str | int) -> Sequence[Contact]:
        """The list's contacts in the order they were added or last changed (a view: slices cost
        their length)."""
        members = self.members.get((gateway, str(list_id)))
        return InOrder(OrderedRows() if members is None else members)

    def add_newsletter(self, gateway: str, key: str, newsletter: dict[str, Any]) -> None:
        self.newsletters[gateway].put(key, newsletter)
        self.version += 1

    # ------------------------------------------------------------------ reset and persistence
    def reset(self) -> None:
        """Forget messages, replies, contacts, lists, newsletters and counters; restore balances, the
        clock, the accounts' timezone and the reply simulation's settings.

        Accounts, devices, tokens and id sequences stay.
        """
        for tables in (self.messages, self.contacts, self.groups, self.newsletters, self.replies):
            for table in tables.values():
                table.rows.clear()
                table.dirty.clear()
        self._clear_indexes()
        self.reply_rate, self.reply_seconds = self.config.reply_rate, self.config.reply_seconds
        self.balance = {gw: float(self.config.balance) for gw in BILLED_GATEWAYS}
        self.spent = {gw: 0.0 for gw in BILLED_GATEWAYS}
        self.requests.clear()
        self.timezones = dict.fromkeys(GATEWAYS, self.config.timezone)
        self.clock.reset()
        self._wipe = self.config.state_file is not None
        self.version += 1

    def _tables(self) -> Iterator[tuple[str, Table[Any]]]:
        for kind, tables in (
            ("message", self.messages),
            ("contact", self.contacts),
            ("group", self.groups),
            ("newsletter", self.newsletters),
            ("reply", self.replies),
        ):
            for gateway, table in tables.items():
                yield f"{kind}/{gateway}", table

    def collect_changes(self) -> SnapshotBatch:
        """Rows changed since the last call, plus the small metadata, as one consistent batch."""
        upserts: list[tuple[str, str, str]] = []
        deletes: list[tuple[str, str]] = []
        for name, table in self._tables():
            for key in table.dirty:
                row = table.rows.get(key)
                if row is None:
                    deletes.append((name, key))
                else:
                    upserts.append((name, key, _encode(row)))
            table.dirty.clear()
        batch = SnapshotBatch(meta=self._meta(), upserts=upserts, deletes=deletes, wipe=self._wipe)
        self._wipe = False
        return batch

    def mark_all_dirty(self) -> None:
        """Make the next snapshot rewrite everything (after a failed write)."""
        self._wipe = self.config.state_file is not None
        for _, table in self._tables():
            table.dirty.update(table.rows)

    def _meta(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "sequences": dict(self.sequences),
            "tokens": self.tokens,
            "balance": self.balance,
            "spent": self.spent,
            "clock_now": self.now(),
            "clock_offset": self.clock.offset,
            "timezones": dict(self.timezones),  # a copy: the snapshot is written from a thread
            "reply_simulation": {"rate": self.reply_rate, "seconds": self.reply_seconds},
        }

    def restore(self, meta: dict[str, Any], rows: dict[str, list[tuple[str, str]]]) -> None:
        """Load a snapshot written by ``collect_changes`` (an empty ``meta`` means a new file).

        ``meta["id_reserved"]`` (written by ``reserve_ids``, maybe with no snapshot yet) moves each
        sequence past its reserved block: ids handed out after the last snapshot are skipped.
        """
        meta = dict(meta)
        reserved = meta.pop("id_reserved", None) or {}
        self._restore_snapshot(meta, rows)
        for name, last in reserved.items():
            self.sequences[name] = max(self.sequences[name], int(last))
        self.reserved = {name: int(last) for name, last in reserved.items()}

    def _restore_snapshot(self, meta: dict[str, Any], rows: dict[str, list[tuple[str, str]]]) -> None:
        if not meta:
            return
        if meta.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"state file schema {meta.get('schema')} is not {SCHEMA_VERSION}")
        self.sequences = Counter(meta["sequences"])
        self.tokens = dict(meta["tokens"])
        self.balance.update(meta["balance"])
        self.spent.update(meta["spent"])
        self.timezones.update(meta.get("timezones", {}))  # absent from files of older sandboxes
        simulation = meta.get("reply_simulation") or {}
        self.reply_rate = simulation.get("rate", self.reply_rate)
        self.reply_seconds = simulation.get("seconds", self.reply_seconds)
        if self.clock.frozen:
            self.clock.set_now(meta["clock_now"])
        else:
            self.clock.offset = meta["clock_offset"]
        for name, table in self._tables():
            kind = name.split("/", 1)[0]
            for key, data in rows.get(name, ()):
                row = _decode(kind, data)
                table.rows[key] = row
                if kind == "message":
                    self._index_message(key, row)
                elif kind == "contact":
                    self._index_contact(key, row)
                elif kind == "reply":
                    self._index_reply(key, row)
        for gateway, table in self.replies.items():  # one sort, whatever order the file kept
            self.reply_order[gateway].load(table.rows.values())


def _encode(row: Any) -> str:
    if isinstance(row, dict):
        return json.dumps(row, separators=(",", ":"), ensure_ascii=False)
    values = [getattr(row, name) for name in _FIELDS[type(row)]]
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def _decode(kind: str, data: str) -> Any:
    values = json.loads(data)
    if kind == "message":
        return Message(*values)
    if kind == "reply":
        return Reply(*values)
    if kind == "contact":
        return Contact(*values)
    if kind == "group":
        return Group(*values)
    return values
