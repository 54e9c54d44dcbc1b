"""The contact sync: mirror a table of customers into a gateway's contact list, sending only the diff.

Airflow-free: :class:`ContactSync` takes a gateway hook and :class:`SyncOptions`, keeps its state in
:mod:`airflow_provider_sms.storage.sync_state` and raises plain ``ValueError`` (a sync that cannot be
run as asked) or the model's errors (:mod:`airflow_provider_sms.exceptions`). The Airflow face is
:class:`airflow_provider_sms.operators.contacts.SmsContactSyncOperator`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

import pandas as pd
import pendulum

from airflow_provider_sms.exceptions import SmsAuthError, SmsTransientError, SmsValidationError
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked
from airflow_provider_sms.messages import Contact, ContactResult, InvalidPhoneNumberError, normalize_phone
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.sources import DEFAULT_CHUNK_SIZE, is_truthy, iter_chunks, require_columns
from airflow_provider_sms.storage.sync_state import ContactRejects, ContactSyncState, SyncedContact, SyncLock

CONTACT_FIELDS = ("phone", "first_name", "last_name", "full_name", "birthday", "unsubscribed")
MODES = ("add_only", "upsert", "mirror")
SAMPLE_SIZE = 5


def check_options(
    *,
    data: Any,
    sql: str | None,
    mode: str,
    list_id: str | int | None,
    list_name: str | None,
    column_mapping: Mapping[str, str] | None,
) -> None:
    """Refuse options no sync can run with (``ValueError``); see :class:`SyncOptions`."""
    if (data is None) == (sql is None):
        raise ValueError("give exactly one of data (DataFrame or list of dicts) and sql")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if list_id in (None, "") and not list_name:
        raise ValueError("give list_id, or list_name (with create_list_if_missing=True to create it)")
    if column_mapping is not None:
        targets = list(column_mapping.values())
        if targets.count("phone") != 1 or len(set(targets)) != len(targets):
            raise ValueError("column_mapping must map exactly one column to 'phone', each field once")
        if "full_name" in targets and {"first_name", "last_name"} & set(targets):
            raise ValueError("map either full_name or first_name/last_name, not both")


@dataclass(frozen=True)
class SyncOptions:
    """What one sync does; the fields mean what the operator's parameters of the same name mean
    (:class:`~airflow_provider_sms.operators.contacts.SmsContactSyncOperator`)."""

    data: Any = None  # a DataFrame or a sequence of mappings; or ``sql`` (with ``sql_conn_id``)
    sql: str | None = None
    sql_conn_id: str | None = None
    column_mapping: Mapping[str, str] | None = None
    key_column: str | None = None
    list_id: str | int | None = None
    list_name: str | None = None
    create_list_if_missing: bool = False
    mode: str = "upsert"
    full_refresh: bool = False
    resave_ambiguous: bool = False
    default_region: str | None = None
    state_conn_id: str = "sqlite_default"
    state_table: str = "sms_contact_sync"
    reject_table: str = "sms_contact_rejects"
    dry_run: bool = False
    max_reject_ratio: float = 0.5
    chunk_size: int = DEFAULT_CHUNK_SIZE
    batch_size: int = 500
    allow_empty_mirror: bool = False
    lock_timeout: float = 600.0
    honour_opt_outs: bool = True
    opt_out_conn_id: str | None = None  # default: state_conn_id
    opt_out_table: str = "sms_opt_outs"

    def __post_init__(self) -> None:
        check_options(
            data=self.data,
            sql=self.sql,
            mode=self.mode,
            list_id=self.list_id,
            list_name=self.list_name,
            column_mapping=self.column_mapping,
        )


@dataclass(frozen=True)
class _Row:
    """One valid input row: its position, contact key, the contact to write and its fields' hash."""

    source_row: int
    key: str
    contact: Contact
    field_hash: str


@dataclass(frozen=True)
class _Write:
    """A create (``contact_id`` None) or update, and the state row to put back if it does not happen."""

    row: _Row
    contact_id: str | None
    before: SyncedContact | None

    @property
    def outgoing(self) -> Contact:
        return replace(self.row.contact, contact_id=self.contact_id)


class ContactSync:
    """One sync of ``options`` into ``hook``'s gateway: the list, the state, the gateway's list when
    reconciling, counters and samples. :meth:`run` it once; ``run_key`` names the run's rejects.

    What the gateway cannot do is read from ``hook.capabilities``, never found out by calling it.
    """

    def __init__(
        self,
        hook: SmsGatewayHook,
        options: SyncOptions,
        run_key: str,
        *,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.hook, self.options, self.run_key = hook, options, run_key
        self.log = log or logging.getLogger(__name__)
        self.token = uuid.uuid4().hex  # marks the state rows this run wrote
        self.counts: Counter = Counter()
        self.samples: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seen: dict[str, int] = {}  # contact key → first source row
        self.mapping: dict[str, str] | None = None
        self.reject_rows: list[tuple] = []
        self.state = ContactSyncState(options.state_conn_id, options.state_table, gateway=hook.gateway)
        self.rejects = ContactRejects(options.state_conn_id, options.reject_table)
        self.has_state = True
        self.list_id: str | None = None
        self.remote: dict[str, Contact] | None = None  # reconciling: gateway contacts not matched yet
        self.by_phone: defaultdict[str, list[str]] = defaultdict(list)
        self.lock: SyncLock | None = None
        self.can_list = hook.capabilities.list_contacts  # else: no reconcile, one write per request
        self.opt_outs: OptOutTable | None = None
        if options.honour_opt_outs:
            self.opt_outs = OptOutTable(
                options.opt_out_conn_id or options.state_conn_id, options.opt_out_table
            )

    def close(self) -> None:
        try:
            if self.lock is not None:
                self.lock.release()
        finally:
            self.state.close()
            self.rejects.close()
            if self.opt_outs is not None:
                self.opt_outs.close()

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Sync, release the lock and the tables, and return :meth:`summary`."""
        try:
            self._run()
        finally:
            self.close()
        return self.summary()

    def check_reject_ratio(self) -> None:
        """Raise :class:`SmsValidationError` when more than ``max_reject_ratio`` of the input was rejected."""
        c, opt = self.counts, self.options
        if c["input"] and c["rejected"] / c["input"] > opt.max_reject_ratio:
            raise SmsValidationError(
                f"{c['rejected']} of {c['input']} contacts were rejected (more than "
                f"max_reject_ratio={opt.max_reject_ratio}); reasons are in the table {opt.reject_table!r}"
            )

    def _run(self) -> None:
        opt = self.options
        if self.opt_outs is not None:  # a missing table is created empty, or read as empty by a dry run
            if not opt.dry_run:
                self.opt_outs.ensure()
            elif not self.opt_outs.exists():
                self.opt_outs = None
        if opt.dry_run:
            self.has_state = self.state.exists()
        else:
            self.state.ensure_table()
            self.rejects.ensure_table()
            self.rejects.clear(self.run_key)
            # One sync of a list at a time: two would both find a contact missing and both create it.
            # A list named, not given by id, is locked by name while it is found or created.
            self.lock = SyncLock(
                opt.state_conn_id, opt.state_table, self.hook.gateway, self.token, self.run_key
            )
            by_id = opt.list_id not in (None, "")
            self.lock.acquire(f"id:{opt.list_id}" if by_id else f"name:{opt.list_name}", opt.lock_timeout)
        if opt.mode == "mirror":
            self._require_deletes()
        fresh = self._resolve_list()
        if self.lock is not None and not by_id:
            self.lock.acquire(f"id:{self.list_id}", opt.lock_timeout)
        if self._needs_reconcile(fresh):
            self._read_gateway_list()
        for chunk in iter_chunks(
            opt.data, sql=opt.sql, sql_conn_id=opt.sql_conn_id, chunk_size=opt.chunk_size
        ):
            self._process(chunk)
        self._finish()

    def _resolve_list(self) -> bool:
        """Set :attr:`list_id`; True when the list is new (so known to be empty)."""
        opt = self.options
        if opt.list_id not in (None, ""):
            self.list_id = str(opt.list_id)
            return False
        found = self.state.find_list(opt.list_name) if self.has_state else None
        if found is None and self.hook.capabilities.find_list:
            found = self.hook.find_list(opt.list_name)  # else (SmsGateway24) only our state knows them
        if found is not None:
            self.list_id = str(found)
            return False
        if not opt.create_list_if_missing:
            raise ValueError(
                f"{self.hook.gateway} has no contact list called {opt.list_name!r} "
                "(set create_list_if_missing=True to create it)"
            )
        if opt.dry_run:
            self.log.info("Dry run: the list %r would be created", opt.list_name)
            return True
        self.list_id = str(self.hook.create_list(opt.list_name))
        # A new list is empty: its (empty) state is complete from now on, and its id is remembered.
        self.state.mark_list(self.list_id, opt.list_name, self.token)
        self.log.info("Created the %s list %r: id %s", self.hook.gateway, opt.list_name, self.list_id)
        return True

    def _require_deletes(self) -> None:
        if not self.hook.capabilities.delete_contacts:
            raise ValueError(
                f"mode='mirror' deletes contacts, which {self.hook.gateway} cannot do: it has no "
                "endpoint to delete contacts. Use mode='upsert' (nothing is deleted) or sync into a fresh list."
            )

    def _needs_reconcile(self, fresh: bool) -> bool:
        opt = self.options
        if fresh:
            return False
        complete = self.has_state and self.state.is_complete(self.list_id)
        in_flight = self.state.count_in_flight(self.list_id) if self.has_state else 0
        if self.can_list:
            return bool(opt.full_refresh or in_flight or not complete)
        if opt.full_refresh:
            raise ValueError(f"full_refresh reads the list, and {self.hook.gateway} cannot list contacts")
        if not complete:
            raise ValueError(
                f"the sync state has no complete record of {self.hook.gateway} list {self.list_id} (a list "
                f"this operator did not create, or a lost table {opt.state_table!r}), and {self.hook.gateway} "
                "cannot list a list's contacts: adding every contact could duplicate those already there. "
                "Sync into a list the operator creates (list_name with create_list_if_missing=True)."
            )
        if in_flight:
            self.log.warning("%d contacts had a write in flight when an earlier run stopped", in_flight)
        return False

    def _read_gateway_list(self) -> None:
        self.log.info("Reading %s list %s to reconcile the sync state", self.hook.gateway, self.list_id)
        self.remote = {}
        for contact in self.hook.list_contacts(self.list_id):
            contact = replace(contact, phone=_e164(contact.phone), contact_id=str(contact.contact_id))
            self.remote[contact.contact_id] = contact
            self.by_phone[contact.phone].append(contact.contact_id)
        self.log.info("The gateway holds %d contacts in list %s", len(self.remote), self.list_id)

    # -- one chunk of input --------------------------------------------------------------------------

    def _process(self, chunk: pd.DataFrame) -> None:
        opt = self.options
        if self.lock is not None:
            self.lock.check()
        if self.mapping is None:
            self.mapping = opt.column_mapping or {c: c for c in chunk.columns if c in CONTACT_FIELDS}
            if "phone" not in self.mapping.values():
                raise ValueError("the contact input has no 'phone' column; map one with column_mapping")
        require_columns(
            list(chunk.columns), [*self.mapping, *([opt.key_column] if opt.key_column else [])], "the sync"
        )
        rows: list[_Row] = []
        protected: list[str] = []  # keys of rejected rows: their contacts are kept as they are
        for record in chunk.to_dict("records"):
            row = self._parse(record)
            if isinstance(row, _Row):
                rows.append(row)
            elif row is not None:
                protected.append(row)
        rows, opted_out = self._opted_out(rows)
        keys = [r.key for r in rows + opted_out] + protected
        synced = self.state.load(self.list_id, keys) if self.has_state and self.list_id else {}
        keep: list[tuple[str, str | None, str | None, str | None]] = []  # state rows written as they are
        writes: list[_Write] = []
        for key in protected:
            if self.remote is not None and key in synced:
                s = synced[key]
                self.remote.pop(s.contact_id or "", None)
                keep.append((s.key, s.contact_id, s.phone, s.field_hash))
        for row in rows:
            self._plan(row, synced.get(row.key), keep, writes)
        removals = self._removals(opted_out, synced, keep)
        if opt.dry_run:
            self.counts["deleted"] += len(removals)
            for key, contact_id in removals[:SAMPLE_SIZE]:
                self._sample("deleted", {"key": key, "contact_id": contact_id})
            for w in writes:
                kind = "updated" if w.contact_id else "created"
                self.counts[kind] += 1
                self._sample(kind, {"row": w.row.source_row, "key": w.row.key, "contact_id": w.contact_id})
            self._flush_rejects()
            return
        self.state.save(self.list_id, keep, self.token)
        self._write(writes)
        self._delete(removals)
        self._flush_rejects()

    def _opted_out(self, rows: list[_Row]) -> tuple[list[_Row], list[_Row]]:
        """Split a chunk's rows by the opt-out table (one query): the rows to sync, and those of
        opted-out numbers on a gateway without an ``unsubscribed`` flag (removed, never added).
        Where contacts carry the flag (Smstools), an opted-out number is synced marked unsubscribed:
        its changed hash sends the update to a contact synced before it opted out."""
        if self.opt_outs is None or not rows:
            return rows, []
        opted = self.opt_outs.opted_out([r.contact.phone for r in rows])
        self.counts["opted_out"] += sum(1 for r in rows if r.contact.phone in opted)
        if not opted:
            return rows, []
        if self.hook.capabilities.contact_unsubscribed:
            marked = []
            for r in rows:
                if r.contact.phone in opted and not r.contact.unsubscribed:
                    contact = replace(r.contact, unsubscribed=True)
                    r = replace(r, contact=contact, field_hash=_fields_hash(contact))
                marked.append(r)
            return marked, []
        return [r for r in rows if r.contact.phone not in opted], [
            r for r in rows if r.contact.phone in opted
        ]

    def _removals(
        self, rows: list[_Row], synced: dict[str, SyncedContact], keep: list[tuple]
    ) -> list[tuple[str | None, str | None]]:
        """The ``(key, contact id)`` of opted-out rows' contacts in the list, to delete. Where the
        gateway cannot delete (SmsGateway24), they stay in the list and in the state, and the run
        says so: a newsletter there then knows the tag holds opted-out numbers."""
        removals, kept = [], 0
        for row in rows:
            found = synced.get(row.key)
            contact_id = found.contact_id if found is not None else None
            if self.remote is not None:
                remote = self._match(row, found)
                contact_id = remote.contact_id if remote is not None else None
            if not contact_id:
                continue  # not in the list: not added
            if self.hook.capabilities.delete_contacts:
                removals.append((row.key, contact_id))
            else:
                kept += 1
                if found is not None:
                    keep.append((found.key, found.contact_id, found.phone, found.field_hash))
        if kept:
            self.counts["opted_out_kept"] += kept
            self.log.warning(
                "%d opted-out numbers stay in %s list %s: %s cannot remove a contact from a list "
                "(a newsletter to it is sent through the ledger, leaving them out)",
                kept,
                self.hook.gateway,
                self.list_id,
                self.hook.gateway,
            )
        return removals

    def _parse(self, record: dict[str, Any]) -> _Row | str | None:
        """A valid row, or the key of a rejected row (None when it has none)."""
        opt = self.options
        self.counts["input"] += 1
        position = int(record.pop("_row"))
        values = {field: record.get(column) for column, field in self.mapping.items()}
        raw_phone = values["phone"]
        key = _text(record.get(opt.key_column)) if opt.key_column else None
        if opt.key_column and key is None:
            self._reject(position, None, raw_phone, f"empty {opt.key_column}", "invalid_key")
            return None
        try:
            phone = normalize_phone(raw_phone, self.region)
        except InvalidPhoneNumberError as exc:
            self._reject(position, key, raw_phone, exc.reason, "invalid_phone")
            return self._protect(key, position)
        key = key or phone
        if key in self.seen:
            self._reject(position, key, raw_phone, f"duplicate of row {self.seen[key]}", "duplicate")
            return None
        try:
            contact = _contact(phone, values)
        except ValueError as exc:
            self._reject(position, key, raw_phone, str(exc), "invalid_field")
            return self._protect(key, position)
        self.seen[key] = position
        return _Row(position, key, contact, _fields_hash(contact))

    def _protect(self, key: str | None, position: int) -> str | None:
        # A row rejected for its values still names its contact: mirror must not delete it for that.
        if key is not None and key not in self.seen:
            self.seen[key] = position
            return key
        return None

    def _plan(self, row: _Row, synced: SyncedContact | None, keep: list, writes: list[_Write]) -> None:
        """Decide what ``row`` needs: nothing, a create or an update."""
        opt = self.options
        if self.remote is not None:  # reconciling: the gateway's list is the truth, the state a hint
            remote = self._match(row, synced)
            if remote is None:
                writes.append(_Write(row, None, None))
            elif _same(row.contact, remote):
                self.counts["unchanged"] += 1
                keep.append((row.key, remote.contact_id, row.contact.phone, row.field_hash))
            elif opt.mode == "add_only":  # left as the gateway has it; a later upsert will update it
                self.counts["unchanged"] += 1
                keep.append((row.key, remote.contact_id, remote.phone, _fields_hash(remote)))
            else:
                before = SyncedContact(row.key, remote.contact_id, remote.phone, _fields_hash(remote))
                writes.append(_Write(row, remote.contact_id, before))
        elif synced is None:
            writes.append(_Write(row, None, None))
        elif synced.field_hash is None:  # a write whose answer was lost, on a gateway that cannot list
            if opt.resave_ambiguous:
                writes.append(_Write(row, synced.contact_id, synced))
            else:
                self._reject(
                    row.source_row,
                    row.key,
                    row.contact.phone,
                    "ambiguous: an earlier write of this contact lost its answer and "
                    f"{self.hook.gateway} cannot list contacts to check it (resave_ambiguous=True saves it again)",
                    "ambiguous",
                )
        elif synced.field_hash == row.field_hash or opt.mode == "add_only":
            self.counts["unchanged"] += 1
        else:
            writes.append(_Write(row, synced.contact_id, synced))

    def _match(self, row: _Row, synced: SyncedContact | None) -> Contact | None:
        """The gateway's contact for ``row``: the one the state names, else one with the same phone."""
        if synced is not None and synced.contact_id in self.remote:
            return self.remote.pop(synced.contact_id)
        for contact_id in self.by_phone.get(row.contact.phone, ()):
            if contact_id in self.remote:
                return self.remote.pop(contact_id)
        return None

    # -- writing -------------------------------------------------------------------------------------

    def _write(self, writes: list[_Write]) -> None:
        """Creates and updates: marked in flight, sent in batches, then settled from the answers."""
        if not writes:
            return
        self.state.save(
            self.list_id, [(w.row.key, w.contact_id, w.row.contact.phone, None) for w in writes], self.token
        )
        # Without a batch endpoint every contact is a request anyway: one per call means a failure
        # leaves one contact in doubt, not a whole batch (which matters where the list cannot be read).
        step = self.options.batch_size if self.can_list else 1
        done: list[tuple[_Write, ContactResult]] = []
        batch: list[_Write] = []
        try:
            for batch in chunked(writes, step):
                try:
                    results = self.hook.upsert_contacts([w.outgoing for w in batch], self.list_id)
                except SmsValidationError as exc:  # the whole request refused: nothing was stored
                    code = None if exc.code is None else str(exc.code)
                    results = [
                        ContactResult(w.outgoing, False, error=exc.message, error_code=code) for w in batch
                    ]
                done.extend(zip(batch, results, strict=True))
        except BaseException as exc:
            # What never left is put back; the batch in flight stays marked, so the next run
            # reconciles it (or reports it, where lists cannot be read), unless it was one request
            # that provably stored nothing (a batch may have stored its first requests before failing).
            in_flight = 0 if len(batch) == 1 and _not_stored(exc) else len(batch)
            self._settle(done, restore=writes[len(done) + in_flight :])
            raise
        self._settle(done, restore=[])

    def _settle(self, done: list[tuple[_Write, ContactResult]], restore: list[_Write]) -> None:
        saved, put_back = [], list(restore)
        for write, result in done:
            row = write.row
            if result.accepted:
                self.counts["updated" if write.contact_id else "created"] += 1
                contact_id = result.contact_id or write.contact_id
                saved.append((row.key, contact_id, row.contact.phone, row.field_hash))
            else:  # not stored: retried on the next run
                reason = result.error or "refused by the gateway"
                self._reject(row.source_row, row.key, row.contact.phone, reason, result.error_code)
                put_back.append(write)
        befores = [w.before for w in put_back if w.before is not None]
        self.state.save(
            self.list_id, saved + [(b.key, b.contact_id, b.phone, b.field_hash) for b in befores], self.token
        )
        self.state.remove(self.list_id, [w.row.key for w in put_back if w.before is None])
        self._flush_rejects()

    def _finish(self) -> None:
        opt = self.options
        if opt.mode == "mirror":
            if self.remote is not None:
                victims = [(None, contact_id) for contact_id in self.remote]
            elif self.has_state and self.list_id:
                victims = [
                    (s.key, s.contact_id)
                    for s in self.state.iter_list(self.list_id)
                    if s.key not in self.seen
                ]
            else:
                victims = []
            doomed = sum(1 for _, contact_id in victims if contact_id)
            if doomed and not self.counts["input"] and not opt.allow_empty_mirror:
                raise ValueError(
                    f"mode='mirror' with an empty input would delete all {doomed} contacts of "
                    f"{self.hook.gateway} list {self.list_id}; nothing was deleted. If the list is "
                    "meant to be emptied, pass allow_empty_mirror=True"
                )
            if self.lock is not None:
                self.lock.check()
            if opt.dry_run:
                self.counts["deleted"] += sum(1 for _, contact_id in victims if contact_id)
                for key, contact_id in victims[:SAMPLE_SIZE]:
                    self._sample("deleted", {"key": key, "contact_id": contact_id})
            else:
                self._delete(victims)
                if self.remote is not None:
                    self.remote.clear()  # deleted: none of them is in the list any more
        if opt.dry_run:
            return
        if self.remote is not None:
            # Contacts that left the input but are still in the list stay known, so a later mirror
            # run deletes them; the rest of the old state describes nothing the gateway holds.
            kept = [
                (s.key, s.contact_id, s.phone, s.field_hash)
                for s in self.state.iter_list(self.list_id)
                if s.key not in self.seen and s.contact_id in self.remote
            ]
            self.state.save(self.list_id, kept, self.token)
            self.state.drop_stale(self.list_id, self.token)
        self.state.mark_list(self.list_id, opt.list_name, self.token)
        self._flush_rejects()

    def _delete(self, victims: list[tuple[str | None, str | None]]) -> None:
        gone: list[str] = []
        try:
            for key, contact_id in victims:
                if contact_id:
                    try:
                        self.hook.delete_contacts([contact_id], self.list_id)
                    except SmsValidationError as exc:
                        if exc.status_code != 404:
                            raise
                        self.log.info("Contact %s was already gone from the gateway", contact_id)
                    self.counts["deleted"] += 1
                if key is not None:
                    gone.append(key)
        finally:
            self.state.remove(self.list_id, gone)

    # -- rejects and reporting ----------------------------------------------------------------------

    def _reject(self, row: int, key: str | None, phone: Any, reason: str, code: str | None) -> None:
        self.counts["rejected"] += 1
        phone_text = None if _text(phone) is None else str(phone)[:250]
        self._sample("rejected", {"row": row, "phone": phone_text, "reason": reason})
        self.reject_rows.append((row, self.hook.gateway, self.list_id, key, phone_text, reason, code))

    def _flush_rejects(self) -> None:
        if self.reject_rows and not self.options.dry_run:
            self.rejects.add(self.run_key, self.reject_rows)
        self.reject_rows = []

    def _sample(self, kind: str, item: dict[str, Any]) -> None:
        if len(self.samples[kind]) < SAMPLE_SIZE:
            self.samples[kind].append(item)

    @cached_property
    def region(self) -> str | None:
        return self.options.default_region or self.hook.extra("default_region")

    def summary(self) -> dict[str, Any]:
        c = self.counts
        summary = {
            "list_id": self.list_id,
            "mode": self.options.mode,
            "input": c["input"],
            "created": c["created"],
            "updated": c["updated"],
            "deleted": c["deleted"],
            "unchanged": c["unchanged"],
            "rejected": c["rejected"],
            "opted_out": c["opted_out"],
            "reconciled": self.remote is not None,
            "state_table": self.options.state_table,
            "reject_table": self.options.reject_table,
        }
        if c["opted_out_kept"]:
            summary["opted_out_kept"] = c["opted_out_kept"]
        if self.options.dry_run:
            summary["dry_run"] = True
            summary["sample"] = dict(self.samples)
        return summary


# -------------------------------------------------------------------------------------------------
# Values


def _text(value: Any) -> str | None:
    """Text of a cell; missing values (None, NaN) and blanks are None, integral floats lose their ``.0``."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _birthday(value: Any) -> date | None:
    if _text(value) is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return pendulum.parse(str(value).strip(), strict=False).date()
    except Exception:
        raise ValueError(f"birthday {value!r} is not a date") from None


def _contact(phone: str, values: Mapping[str, Any]) -> Contact:
    first, last = _text(values.get("first_name")), _text(values.get("last_name"))
    if first is None and last is None:
        first = _text(values.get("full_name"))
    extra = {field: _text(v) for field, v in values.items() if field not in CONTACT_FIELDS}
    return Contact(
        phone=phone,
        first_name=first,
        last_name=last,
        birthday=_birthday(values.get("birthday")),
        unsubscribed=is_truthy(values.get("unsubscribed")),
        extra={field: v for field, v in extra.items() if v is not None},
    )


def _fields_hash(contact: Contact) -> str:
    """A stable hash of everything a sync writes about a contact."""
    fields = [
        contact.phone,
        contact.first_name or None,
        contact.last_name or None,
        contact.birthday.isoformat() if contact.birthday else None,
        bool(contact.unsubscribed),
        sorted((k, str(v)) for k, v in (contact.extra or {}).items() if _text(v) is not None),
    ]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


def _same(wanted: Contact, remote: Contact) -> bool:
    """Whether the gateway's contact already holds what ``wanted`` says (compared as the hash does)."""
    return _fields_hash(wanted) == _fields_hash(
        replace(remote, first_name=_text(remote.first_name), last_name=_text(remote.last_name))
    )


def _e164(phone: Any) -> str:
    text = str(phone or "").strip()
    try:
        return normalize_phone(text if text.startswith("+") else f"+{text}")
    except InvalidPhoneNumberError:
        return text


def _not_stored(exc: BaseException) -> bool:
    """Whether a failed write provably stored nothing (refused, or never left)."""
    return isinstance(exc, SmsAuthError) or (isinstance(exc, SmsTransientError) and not exc.request_sent)
