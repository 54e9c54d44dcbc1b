"""SmsDeliveryReportOperator: delivery statuses from a gateway, upserted into a warehouse table.

The reconcile itself (statuses read in chunks with prefetch, filtered by campaign, merged never
backwards) is :class:`airflow_provider_sms.campaign.report.Reconcile`; the tables and statements are
in :mod:`airflow_provider_sms.storage.report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign.report import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_LOOKBACK,
    Reconcile,
    UnknownCampaignError,
    reading_since,
)
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.operators.send import ledger_asset


class SmsDeliveryReportOperator(BaseOperator):
    """Fetch delivery statuses in bulk and upsert them into a warehouse table.

    Statuses come from the gateway's list endpoint (paged, from ``since``), are normalised to one
    vocabulary (the raw value kept beside it) and merged into ``report_table`` keyed by
    ``(gateway, message_id)``: a status never moves backwards, ``delivered_at`` / ``failed_at`` are
    set once. The ledger rows with the same gateway message ids get the status too. The report
    table is the task's outlet Asset, so downstream DAGs can be scheduled on it. Inbound messages
    (status ``received``) are not delivery outcomes and are skipped.

    Returns ``{"report_table", "fetched", "changed", "counts"}``: statuses read, rows inserted or
    moved forward, and the fetched messages per normalised status.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param report_conn_id: Airflow SQL connection of the report table (SQLite, PostgreSQL, ...).
    :param report_table: report table name (created if missing; may be ``schema.table``).
    :param ledger_conn_id: SQL connection of the message ledger (default ``report_conn_id``).
    :param ledger_table: ledger table whose rows get the statuses; None to leave the ledger alone.
    :param history_table: optional table with one row per observed status transition.
    :param campaign_key: report only this campaign's messages (templated): the ledger's accepted
        message ids, read from just before its first send (unless ``since`` is given); reading stops
        once every one was seen. Without it the report covers every message of the account since
        ``since``. Either way each report row gets its ``campaign_key`` where the ledger (on the
        same connection) knows it.
    :param since: read messages created from this time on (templated: datetime or ISO-8601 text).
    :param lookback: without ``since`` or ``campaign_key``: read messages of this period before now
        (default 7 days).
    :param chunk_size: statuses staged and merged per transaction.
    :param prefetch: read the next chunk from the gateway in a background thread while one is
        written (the two overlap; at most two chunks wait in memory besides the one written).
    """

    template_fields: Sequence[str] = (
        "since",
        "report_table",
        "ledger_table",
        "history_table",
        "campaign_key",
    )
    ui_color = "#e8e0f5"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        report_conn_id: str = "sqlite_default",
        report_table: str = "sms_delivery_report",
        ledger_conn_id: str | None = None,
        ledger_table: str | None = "sms_messages",
        history_table: str | None = None,
        campaign_key: str | None = None,
        since: datetime | str | None = None,
        lookback: timedelta | float = DEFAULT_LOOKBACK,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefetch: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [ledger_asset(report_conn_id, report_table)])
        super().__init__(**kwargs)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.sms_conn_id = sms_conn_id
        self.report_conn_id = report_conn_id
        self.report_table = report_table
        self.ledger_conn_id = ledger_conn_id or report_conn_id
        self.ledger_table = ledger_table
        self.history_table = history_table
        if campaign_key is not None and not ledger_table:
            raise ValueError(
                "campaign_key needs the ledger (ledger_table) that knows the campaign's messages"
            )
        self.campaign_key = campaign_key
        self.since = since
        self.lookback = lookback if isinstance(lookback, timedelta) else timedelta(seconds=lookback)
        self.chunk_size = chunk_size
        self.prefetch = prefetch

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def _since(self, first_sent: datetime | None = None) -> datetime:
        return reading_since(self.since, self.lookback, first_sent)

    def execute(self, context: Context) -> dict[str, Any]:
        reconcile = Reconcile(
            self.hook,
            report_conn_id=self.report_conn_id,
            report_table=self.report_table,
            ledger_conn_id=self.ledger_conn_id,
            ledger_table=self.ledger_table,
            history_table=self.history_table,
            campaign_key=self.campaign_key,
            chunk_size=self.chunk_size,
            prefetch=self.prefetch,
            log=self.log,
        )
        try:
            wanted, first_sent = reconcile.campaign()
        except UnknownCampaignError as exc:
            raise AirflowFailException(str(exc)) from None
        done = reconcile.run(self._since(first_sent), wanted)
        result = {
            "report_table": self.report_table,
            **({"campaign_key": self.campaign_key} if self.campaign_key else {}),
            "fetched": done.fetched,
            "changed": done.changed,
            "counts": dict(sorted(done.counts.items())),
        }
        self.log.info("Delivery report: %s", result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the gateway's message log in; report, ledger and history tables out."""
        from airflow_provider_sms.operators.lineage import gateway_dataset_id, operator_lineage

        outputs = [(self.report_conn_id, self.report_table)]
        if self.ledger_table:
            outputs.append((self.ledger_conn_id, self.ledger_table))
        if self.history_table:
            outputs.append((self.report_conn_id, self.history_table))
        return operator_lineage(
            inputs=[gateway_dataset_id(self.hook.gateway, self.hook.base_url)],
            output_tables=outputs,
        )
