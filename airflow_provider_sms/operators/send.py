"""SmsBulkSendOperator: a templated campaign to an audience, sent exactly once through a ledger
(the engine is ``campaign/send.py``; this gives it the arguments, the hook and the ledger)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from functools import cached_property
from typing import Any

import pandas as pd
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign.send import (
    DEFAULT_MAX_IN_FLIGHT,
    CampaignSend,
    SendSettings,
    in_flight_count,
    suppression_set,
)
from airflow_provider_sms.campaign.send_window import parse_window, zone
from airflow_provider_sms.campaign.templates import MessageTemplate
from airflow_provider_sms.exceptions import SmsConcurrentRunError, SmsConfigurationError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.operators import lineage
from airflow_provider_sms.operators.lineage import LedgerOutlets, ledger_asset
from airflow_provider_sms.operators.lineage import default_outlets as _default_outlets
from airflow_provider_sms.operators.rails import CapArgument, SafetyRails, failing_fast, rails_doc
from airflow_provider_sms.operators.window import SendWindowDeferral
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.sources import DEFAULT_CHUNK_SIZE, iter_chunks, suppression_numbers

__all__ = ["SmsBulkSendOperator", "SmsConcurrentRunError", "default_campaign_key", "ledger_asset"]
TEMPLATED = ("audience", "sql", "campaign_key", "suppression_sql", "sender", "max_in_flight")


@rails_doc(budget=True)
class SmsBulkSendOperator(SendWindowDeferral, LedgerOutlets, SafetyRails, BaseOperator):
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
    :param cost_per_segment: price of one segment in the gateway's currency (the dry run's estimate,
        ``max_cost``, a Smstools balance); default the connection's ``cost_per_segment`` extra.
    :param max_reject_ratio: fail (after recording everything) if more than this share of the
        recipients was rejected.
    :param resend_ambiguous: resend messages whose fate no look-up could settle (risking a duplicate);
        by default they stay ``ambiguous`` and every later try looks them up again.
    :param chunk_size: rows read and recorded at a time.
    :param batch_size: messages per request; at most (and by default) the gateway's maximum.
    :param max_in_flight: batch requests out at once (templated; ≥ 1, default 2; each claimed before it
        leaves, answers recorded in request order, nothing more leaves after a run-ending failure).
    :param message_options: gateway-specific send fields for every message (``sim``, ``type``...).
    :param concurrent_run_timeout: seconds to wait while another try of the same campaign (and
        shard) is running (a manual re-run beside the scheduled one, a retry beside a lost worker's
        try that is still alive) before failing; the two never send at the same time.
    """

    template_fields: Sequence[str] = TEMPLATED
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
        max_in_flight: int | str = DEFAULT_MAX_IN_FLIGHT,
        message_options: Mapping[str, Any] | None = None,
        concurrent_run_timeout: float = 900.0,
        honour_opt_outs: bool = True,
        opt_out_conn_id: str | None = None,
        opt_out_table: str = "sms_opt_outs",
        max_messages_per_recipient: CapArgument | None = None,
        max_cost: float | None = None,
        check_balance: bool = True,
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
        self.sql, self.sql_conn_id = sql, sql_conn_id
        self.phone_column = phone_column
        self.default_region = default_region
        self.campaign_key = campaign_key
        self.ledger_conn_id, self.ledger_table = ledger_conn_id, ledger_table
        self.sender = sender
        self.unsubscribed_column = unsubscribed_column
        self.suppression_list, self.suppression_sql = suppression_list, suppression_sql
        self.suppression_conn_id = suppression_conn_id
        self.send_window = parse_window(send_window) if send_window else None
        self.window_timezone, self.timezone_column = window_timezone, timezone_column
        self.window_mode = window_mode
        self.shard_index, self.shard_count = shard_index, shard_count
        self.dry_run, self.cost_per_segment = dry_run, cost_per_segment
        self.max_reject_ratio, self.resend_ambiguous = max_reject_ratio, resend_ambiguous
        self.chunk_size, self.batch_size, self.max_in_flight = chunk_size, batch_size, max_in_flight
        if not (isinstance(max_in_flight, str) and "{{" in max_in_flight):
            in_flight_count(max_in_flight)  # a wrong value fails when the DAG is parsed
        self.message_options = dict(message_options or {})
        self.concurrent_run_timeout = concurrent_run_timeout
        rails = (honour_opt_outs, opt_out_conn_id, opt_out_table, max_messages_per_recipient)
        self.set_rails(*rails, max_cost, check_balance)

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def run_campaign(self, context: Context) -> dict[str, Any]:
        """Send the campaign now (no send-window deferral) and return its summary."""
        key = self.campaign_key or default_campaign_key(context)
        names = {"campaign_key": key, "ds": context.get("ds"), "logical_date": context.get("logical_date")}
        template = MessageTemplate(self.message, {**names, "params": context.get("params") or {}})
        conn_id = self.suppression_conn_id or self.sql_conn_id
        numbers = suppression_numbers(self.suppression_list, self.suppression_sql, conn_id)
        suppressed = suppression_set(numbers, self.region, self.log)
        ledger = None
        if not self.dry_run:
            hook, conn_id = self.hook, self.sms_conn_id
            ledger = MessageLedger(
                self.ledger_conn_id, self.ledger_table, gateway=hook.gateway, sms_conn_id=conn_id
            )
        price = self.settings.cost_per_segment
        rails = self.make_rails(key, read_only=self.dry_run, cost_per_segment=price, log=self.log)
        engine = CampaignSend(
            self.settings, self.hook, key, template, suppressed, ledger, self.send_at_in, self.log, rails
        )
        chunks = iter_chunks(
            self.audience, sql=self.sql, sql_conn_id=self.sql_conn_id, chunk_size=self.chunk_size
        )
        try:
            with failing_fast():
                return engine.run(chunks)  # closes the ledger and the rails
        except SmsConfigurationError as exc:  # refused for its configuration: retrying will not help
            raise AirflowFailException(str(exc)) from exc.__cause__

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the tables the audience query reads in; the ledger and the gateway's messages out."""
        return lineage.operator_lineage(
            input_tables=lineage.sql_query_tables(self.sql, self.sql_conn_id),
            output_tables=[] if self.dry_run else [(self.ledger_conn_id, self.ledger_table)],
            outputs=[]
            if self.dry_run
            else [lineage.gateway_dataset_id(self.hook.gateway, self.hook.base_url)],
        )

    @cached_property
    def settings(self) -> SendSettings:
        """The engine's settings: the arguments of the same names, the batch size within the gateway's."""
        own = ("batch_size", "cost_per_segment", "max_in_flight")
        names = [f.name for f in fields(SendSettings) if f.name not in own]
        batch_size = min(self.batch_size or self.hook.batch_size, self.hook.batch_size)
        price = self.price(self.cost_per_segment, self.hook)
        try:
            in_flight = in_flight_count(self.max_in_flight)  # rendered by now
        except ValueError as exc:  # a rendered template: retrying will not fix it
            raise AirflowFailException(str(exc)) from None
        values = {n: getattr(self, n) for n in names}
        return SendSettings(**values, batch_size=batch_size, cost_per_segment=price, max_in_flight=in_flight)

    @cached_property
    def region(self) -> str | None:
        return self.default_region or self.hook.extra("default_region")


def default_campaign_key(context: Context) -> str:
    """``<dag_id>.<task_id>.<logical date or run id>``: stable across retries of one run."""
    ti = context["ti"]
    moment = context.get("logical_date")
    suffix = moment.isoformat() if moment else context.get("run_id")
    return f"{ti.dag_id}.{ti.task_id}.{suffix}"
