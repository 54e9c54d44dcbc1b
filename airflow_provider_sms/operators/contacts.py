"""SmsContactSyncOperator: mirror a warehouse table into a gateway's contact list, sending only the diff."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from functools import cached_property
from typing import Any

import pandas as pd
from airflow.sdk import BaseOperator, Context

from airflow_provider_sms.campaign.contacts import ContactSync, SyncOptions, check_options
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.operators.rails import SafetyRails, rails_doc
from airflow_provider_sms.storage.sources import DEFAULT_CHUNK_SIZE
from airflow_provider_sms.storage.sync_state import ContactSyncState


@rails_doc(budget=False)
class SmsContactSyncOperator(SafetyRails, BaseOperator):
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

    Opted-out numbers (the opt-out table, by E.164 number): Smstools contacts are synced with
    ``unsubscribed`` set (an update goes out when a synced number opts out, and back when it
    answers START); TextBoost contacts are not added, and removed once they opt out;
    SmsGateway24 cannot remove a contact, so an opted-out number synced before stays in its tag
    (counted in the summary's ``opted_out_kept``; a newsletter to the tag leaves it out).
    The summary's ``opted_out`` counts the input rows whose number opted out.
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
        honour_opt_outs: bool = True,
        opt_out_conn_id: str | None = None,
        opt_out_table: str = "sms_opt_outs",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_options(
            data=data,
            sql=sql,
            mode=mode,
            list_id=list_id,
            list_name=list_name,
            column_mapping=column_mapping,
        )
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
        self.set_rails(honour_opt_outs, opt_out_conn_id, opt_out_table)

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        sync = ContactSync(self.hook, self._options(), _run_key(context), log=self.log)
        summary = sync.run()
        self._synced_list = sync.list_id  # for lineage
        self.log.info("Contact sync into %s list %s: %s", self.hook.gateway, sync.list_id, summary)
        sync.check_reject_ratio()
        return summary

    def _options(self) -> SyncOptions:
        """The (rendered) parameters, as the engine takes them: same names."""
        return SyncOptions(**{f.name: getattr(self, f.name) for f in fields(SyncOptions)})

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


def _run_key(context: Context) -> str:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    suffix = f".{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}.{context.get('run_id')}{suffix}"


def synced_list_id(
    sms_conn_id: str, list_name: str, *, state_conn_id: str, state_table: str = "sms_contact_sync"
) -> str | None:
    """The id of the list a contact sync created (or found) as ``list_name`` on the gateway behind
    ``sms_conn_id``, from the sync state; None if no sync did. For a newsletter to a synced list."""
    state = ContactSyncState(state_conn_id, state_table, gateway=get_gateway_hook(sms_conn_id).gateway)
    try:
        return state.find_list(list_name) if state.exists() else None
    finally:
        state.close()
