"""SmsContactSyncOperator: mirror a warehouse table into a gateway's contact list, sending only the diff."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

import pandas as pd
import pendulum
from airflow.sdk import BaseOperator, Context

from airflow_provider_sms.exceptions import SmsAuthError, SmsTransientError, SmsValidationError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked
from airflow_provider_sms.messages import Contact, ContactResult, InvalidPhoneNumberError, normalize_phone
from airflow_provider_sms.storage.sources import DEFAULT_CHUNK_SIZE, is_truthy, iter_chunks, require_columns
from airflow_provider_sms.storage.sync_state import ContactRejects, ContactSyncState, SyncedContact, SyncLock

CONTACT_FIELDS = ("phone", "first_name", "last_name", "full_name", "birthday", "unsubscribed")
MODES = ("add_only", "upsert", "mirror")
SAMPLE_SIZE = 5


class SmsContactSyncOperator(BaseOperator):
    """Mirror a table of customers into a gateway's contact list (Smstools group, SmsGateway24 tag,
    TextBoost contact group), sending only what changed since the last run.

    A sync-state table remembers, per list and contact key, the gateway's contact id and a hash of the
    fields last written: an unchanged audience sends no request at all. When that state is missing
    (first sync, lost table) or ``full_refresh`` is set, the gateway's list is read (paged) and
    reconciled instead of adding everyone again. Each write is marked in flight before it leaves, so a
    lost answer is settled by that same reconcile on the next run rather than by a second create.

    SmsGateway24 can neither list, update nor delete contacts: an update there is a re-save (the tag
    keeps the earlier record too), ``mode="mirror"`` is refused before anything is sent, and so is a
    sync into a tag the state has no complete record of (it cannot be read, so contacts already in it
    would be added twice): let the operator create the tag (``list_name`` with
    ``create_list_if_missing``). Should the state table be lost, a sync by ``list_name`` then creates
    a fresh tag (the old one is left as it is; the summary's ``list_id`` names the new one) and a sync
    by ``list_id`` refuses. Writes go out one contact per request there anyway, so a failure leaves at
    most one contact in doubt; such a contact is reported as rejected ("ambiguous") and saved again
    only with ``resave_ambiguous``.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param data: the contacts as a DataFrame or a list of dicts (templated: may be an upstream XCom).
    :param sql: a query returning the contacts, read in chunks (templated); with ``sql_conn_id``.
    :param sql_conn_id: the Airflow SQL connection ``sql`` runs on.
    :param column_mapping: source column → contact field: ``phone`` (required), ``first_name``,
        ``last_name``, ``full_name`` (stored as the first name when no first/last name is mapped),
        ``birthday``, ``unsubscribed``; any other field name is an extra field, sent under that name
        (Smstools ``email``, ``extra1`` … ``extra8``). A gateway keeps only the fields it has
        (TextBoost: phone and names; SmsGateway24: phone and full name). Default: the input's
        columns that carry these names.
    :param key_column: source column identifying a contact (e.g. a customer id), so a changed phone
        is an update; default: the E.164 phone number is the key.
    :param list_id: id of the target list (templated).
    :param list_name: name of the target list, when no ``list_id`` is given (templated); the id found
        (or created) is remembered in the state table, so later runs do not ask the gateway.
    :param create_list_if_missing: create the list called ``list_name`` when it does not exist.
    :param mode: ``"upsert"`` (create and update), ``"add_only"`` (create only: existing contacts are
        left as they are) or ``"mirror"`` (also delete the list's contacts that left the input).
    :param allow_empty_mirror: let ``mode="mirror"`` with an empty input delete the whole list; without
        it such a run fails before deleting anything (an empty input is more often a broken
        upstream query than a wish to empty the list).
    :param full_refresh: read the gateway's list and reconcile from it, whatever the state says.
    :param resave_ambiguous: on gateways that cannot list contacts, save again the contacts whose
        earlier write lost its answer (risking a second record) instead of reporting them.
    :param default_region: region for national numbers; defaults to the connection's ``default_region``.
    :param state_conn_id: SQL connection of the state and reject tables (created if missing).
    :param state_table: sync state table name.
    :param reject_table: reject table name: one row per rejected input row and run, with the reason.
    :param dry_run: read and compare, log and return the plan (counts and a sample); change nothing.
    :param max_reject_ratio: fail (after recording everything) when more than this share of the input
        rows was rejected, so a sync where every row failed never looks green.
    :param chunk_size: input rows read and compared at a time.
    :param batch_size: contacts per write request where the gateway has a batch endpoint.
    :param lock_timeout: syncs of one list run one at a time (a lock row in the state table, held
        for the run): seconds a sync waits for another one of the same list before it fails.
    """

    template_fields: Sequence[str] = ("data", "sql", "list_id", "list_name")
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#e6ecf7"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        data: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        column_mapping: Mapping[str, str] | None = None,
        key_column: str | None = None,
        list_id: str | int | None = None,
        list_name: str | None = None,
        create_list_if_missing: bool = False,
        mode: str = "upsert",
        full_refresh: bool = False,
        resave_ambiguous: bool = False,
        default_region: str | None = None,
        state_conn_id: str = "sqlite_default",
        state_table: str = "sms_contact_sync",
        reject_table: str = "sms_contact_rejects",
        dry_run: bool = False,
        max_reject_ratio: float = 0.5,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int = 500,
        allow_empty_mirror: bool = False,
        lock_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.sms_conn_id = sms_conn_id
        self.data = data
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.column_mapping = dict(column_mapping) if column_mapping is not None else None
        self.key_column = key_column
        self.list_id = list_id
        self.list_name = list_name
        self.create_list_if_missing = create_list_if_missing
        self.mode = mode
        self.full_refresh = full_refresh
        self.resave_ambiguous = resave_ambiguous
        self.default_region = default_region
        self.state_conn_id = state_conn_id
        self.state_table = state_table
        self.reject_table = reject_table
        self.dry_run = dry_run
        self.max_reject_ratio = max_reject_ratio
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.allow_empty_mirror = allow_empty_mirror
        self.lock_timeout = lock_timeout

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        sync = _Sync(self, _run_key(context))
        try:
            sync.run()
        finally:
            sync.close()
        summary = sync.summary()
        self._synced_list = sync.list_id  # for lineage
        self.log.info("Contact sync into %s list %s: %s", self.hook.gateway, sync.list_id, summary)
        if summary["input"] and summary["rejected"] / summary["input"] > self.max_reject_ratio:
            raise SmsValidationError(
                f"{summary['rejected']} of {summary['input']} contacts were rejected (more than "
                f"max_reject_ratio={self.max_reject_ratio}); reasons are in the table {self.reject_table!r}"
            )
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the tables a ``sql`` input reads in; the gateway's contact list, the state and
        reject tables out (None without the OpenLineage provider)."""
        from airflow_provider_sms.operators.lineage import (
            gateway_dataset_id,
            operator_lineage,
            sql_query_tables,
        )

        target = getattr(self, "_synced_list", None) or self.list_id or self.list_name
        return operator_lineage(
            input_tables=sql_query_tables(self.sql, self.sql_conn_id),
            outputs=[gateway_dataset_id(self.hook.gateway, self.hook.base_url, f"contact_lists/{target}")],
            output_tables=[(self.state_conn_id, self.state_table), (self.state_conn_id, self.reject_table)],
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


class _Sync:
    """One execution: the list, the state, the gateway's list when reconciling, counters and samples."""

    def __init__(self, op: SmsContactSyncOperator, run_key: str) -> None:
        self.op, self.hook, self.log = op, op.hook, op.log
        self.run_key = run_key
        self.token = uuid.uuid4().hex  # marks the state rows this run wrote
        self.counts: Counter = Counter()
        self.samples: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seen: dict[str, int] = {}  # contact key → first source row
        self.mapping: dict[str, str] | None = None
        self.reject_rows: list[tuple] = []
        self.state = ContactSyncState(op.state_conn_id, op.state_table, gateway=self.hook.gateway)
        self.rejects = ContactRejects(op.state_conn_id, op.reject_table)
        self.has_state = True
        self.list_id: str | None = None
        self.remote: dict[str, Contact] | None = None  # reconciling: gateway contacts not matched yet
        self.by_phone: defaultdict[str, list[str]] = defaultdict(list)
        self.lock: SyncLock | None = None

    def close(self) -> None:
        try:
            if self.lock is not None:
                self.lock.release()
        finally:
            self.state.close()
            self.rejects.close()

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> None:
        op = self.op
        if op.dry_run:
            self.has_state = self.state.exists()
        else:
            self.state.ensure_table()
            self.rejects.ensure_table()
            self.rejects.clear(self.run_key)
            # One sync of a list at a time: two would both find a contact missing and both create it.
            # A list named, not given by id, is locked by name while it is found or created.
            self.lock = SyncLock(
                op.state_conn_id, op.state_table, self.hook.gateway, self.token, self.run_key
            )
            by_id = op.list_id not in (None, "")
            self.lock.acquire(f"id:{op.list_id}" if by_id else f"name:{op.list_name}", op.lock_timeout)
        if op.mode == "mirror":
            self._require_deletes()
        fresh = self._resolve_list()
        if self.lock is not None and not by_id:
            self.lock.acquire(f"id:{self.list_id}", op.lock_timeout)
        self.can_list = self._can_list()
        if self._needs_reconcile(fresh):
            self._read_gateway_list()
        for chunk in iter_chunks(op.data, sql=op.sql, sql_conn_id=op.sql_conn_id, chunk_size=op.chunk_size):
            self._process(chunk)
        self._finish()

    def _resolve_list(self) -> bool:
        """Set :attr:`list_id`; True when the list is new (so known to be empty)."""
        op = self.op
        if op.list_id not in (None, ""):
            self.list_id = str(op.list_id)
            return False
        found = self.state.find_list(op.list_name) if self.has_state else None
        if found is None:
            try:
                found = self.hook.find_list(op.list_name)
            except NotImplementedError:  # SmsGateway24 cannot list its tags: only our state knows them
                found = None
        if found is not None:
            self.list_id = str(found)
            return False
        if not op.create_list_if_missing:
            raise ValueError(
                f"{self.hook.gateway} has no contact list called {op.list_name!r} "
                "(set create_list_if_missing=True to create it)"
            )
        if op.dry_run:
            self.log.info("Dry run: the list %r would be created", op.list_name)
            return True
        self.list_id = str(self.hook.create_list(op.list_name))
        # A new list is empty: its (empty) state is complete from now on, and its id is remembered.
        self.state.mark_list(self.list_id, op.list_name, self.token)
        self.log.info("Created the %s list %r: id %s", self.hook.gateway, op.list_name, self.list_id)
        return True

    def _require_deletes(self) -> None:
        op = self.op
        # Asking to delete nothing costs no request; a gateway without the endpoint refuses at once.
        try:
            self.hook.delete_contacts([], str(op.list_id or ""))
        except NotImplementedError as exc:
            raise ValueError(
                f"mode='mirror' deletes contacts, which {self.hook.gateway} cannot do: {exc} "
                "Use mode='upsert' (nothing is deleted) or sync into a fresh list."
            ) from None

    def _can_list(self) -> bool:
        # list_contacts is lazy: calling it sends nothing, but a gateway without the endpoint refuses.
        try:
            listing = self.hook.list_contacts(self.list_id or "")
        except NotImplementedError:
            return False
        getattr(listing, "close", lambda: None)()
        return True

    def _needs_reconcile(self, fresh: bool) -> bool:
        op = self.op
        if fresh:
            return False
        complete = self.has_state and self.state.is_complete(self.list_id)
        in_flight = self.state.count_in_flight(self.list_id) if self.has_state else 0
        if self.can_list:
            return bool(op.full_refresh or in_flight or not complete)
        if op.full_refresh:
            raise ValueError(f"full_refresh reads the list, and {self.hook.gateway} cannot list contacts")
        if not complete:
            raise ValueError(
                f"the sync state has no complete record of {self.hook.gateway} list {self.list_id} (a list "
                f"this operator did not create, or a lost table {op.state_table!r}), and {self.hook.gateway} "
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
        op = self.op
        if self.lock is not None:
            self.lock.check()
        if self.mapping is None:
            self.mapping = op.column_mapping or {c: c for c in chunk.columns if c in CONTACT_FIELDS}
            if "phone" not in self.mapping.values():
                raise ValueError("the contact input has no 'phone' column; map one with column_mapping")
        require_columns(
            list(chunk.columns), [*self.mapping, *([op.key_column] if op.key_column else [])], "the sync"
        )
        rows: list[_Row] = []
        protected: list[str] = []  # keys of rejected rows: their contacts are kept as they are
        for record in chunk.to_dict("records"):
            row = self._parse(record)
            if isinstance(row, _Row):
                rows.append(row)
            elif row is not None:
                protected.append(row)
        keys = [r.key for r in rows] + protected
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
        if op.dry_run:
            for w in writes:
                kind = "updated" if w.contact_id else "created"
                self.counts[kind] += 1
                self._sample(kind, {"row": w.row.source_row, "key": w.row.key, "contact_id": w.contact_id})
            self._flush_rejects()
            return
        self.state.save(self.list_id, keep, self.token)
        self._write(writes)
        self._flush_rejects()

    def _parse(self, record: dict[str, Any]) -> _Row | str | None:
        """A valid row, or the key of a rejected row (None when it has none)."""
        op = self.op
        self.counts["input"] += 1
        position = int(record.pop("_row"))
        values = {field: record.get(column) for column, field in self.mapping.items()}
        raw_phone = values["phone"]
        key = _text(record.get(op.key_column)) if op.key_column else None
        if op.key_column and key is None:
            self._reject(position, None, raw_phone, f"empty {op.key_column}", "invalid_key")
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
        op = self.op
        if self.remote is not None:  # reconciling: the gateway's list is the truth, the state a hint
            remote = self._match(row, synced)
            if remote is None:
                writes.append(_Write(row, None, None))
            elif _same(row.contact, remote):
                self.counts["unchanged"] += 1
                keep.append((row.key, remote.contact_id, row.contact.phone, row.field_hash))
            elif op.mode == "add_only":  # left as the gateway has it; a later upsert will update it
                self.counts["unchanged"] += 1
                keep.append((row.key, remote.contact_id, remote.phone, _fields_hash(remote)))
            else:
                before = SyncedContact(row.key, remote.contact_id, remote.phone, _fields_hash(remote))
                writes.append(_Write(row, remote.contact_id, before))
        elif synced is None:
            writes.append(_Write(row, None, None))
        elif synced.field_hash is None:  # a write whose answer was lost, on a gateway that cannot list
            if op.resave_ambiguous:
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
        elif synced.field_hash == row.field_hash or op.mode == "add_only":
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
        step = self.op.batch_size if self.can_list else 1
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
        op = self.op
        if op.mode == "mirror":
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
            if doomed and not self.counts["input"] and not op.allow_empty_mirror:
                raise ValueError(
                    f"mode='mirror' with an empty input would delete all {doomed} contacts of "
                    f"{self.hook.gateway} list {self.list_id}; nothing was deleted. If the list is "
                    "meant to be emptied, pass allow_empty_mirror=True"
                )
            if self.lock is not None:
                self.lock.check()
            if op.dry_run:
                self.counts["deleted"] += sum(1 for _, contact_id in victims if contact_id)
                for key, contact_id in victims[:SAMPLE_SIZE]:
                    self._sample("deleted", {"key": key, "contact_id": contact_id})
            else:
                self._delete(victims)
                if self.remote is not None:
                    self.remote.clear()  # deleted: none of them is in the list any more
        if op.dry_run:
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
        self.state.mark_list(self.list_id, op.list_name, self.token)
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
        if self.reject_rows and not self.op.dry_run:
            self.rejects.add(self.run_key, self.reject_rows)
        self.reject_rows = []

    def _sample(self, kind: str, item: dict[str, Any]) -> None:
        if len(self.samples[kind]) < SAMPLE_SIZE:
            self.samples[kind].append(item)

    @cached_property
    def region(self) -> str | None:
        return self.op.default_region or self.hook.extra("default_region")

    def summary(self) -> dict[str, Any]:
        c = self.counts
        summary = {
            "list_id": self.list_id,
            "mode": self.op.mode,
            "input": c["input"],
            "created": c["created"],
            "updated": c["updated"],
            "deleted": c["deleted"],
            "unchanged": c["unchanged"],
            "rejected": c["rejected"],
            "reconciled": self.remote is not None,
            "state_table": self.op.state_table,
            "reject_table": self.op.reject_table,
        }
        if self.op.dry_run:
            summary["dry_run"] = True
            summary["sample"] = dict(self.samples)
        return summary


# -------------------------------------------------------------------------------------------------
# Values


def _run_key(context: Context) -> str:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    suffix = f".{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}.{context.get('run_id')}{suffix}"


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
