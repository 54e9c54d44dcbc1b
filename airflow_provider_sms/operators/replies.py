"""SmsRepliesOperator: a gateway's replies into a warehouse table, their STOPs and STARTs into the
opt-out table the send, the newsletter and the contact sync honour (the engine is
``campaign/replies.py``; the tables and statements are ``storage/replies.py`` and
``storage/opt_outs.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_sms.campaign.replies import BATCH_SIZE, ReplyIntake
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import CLOCK_SKEW, as_datetime
from airflow_provider_sms.operators.lineage import ledger_asset
from airflow_provider_sms.storage.table import quote_name

__all__ = ["SmsRepliesOperator", "replies_outlets"]


def replies_outlets(
    replies_conn_id: str, replies_table: str, opt_out_conn_id: str | None, opt_out_table: str | None
) -> list[Any]:
    """The Assets of the tables the task writes: the replies table, and the opt-out table unless off."""
    outlets = [ledger_asset(replies_conn_id, replies_table)]
    if opt_out_table:
        outlets.append(ledger_asset(opt_out_conn_id or replies_conn_id, opt_out_table))
    return outlets


class SmsRepliesOperator(BaseOperator):
    """Read a gateway's replies into a warehouse table and record the opt-outs they carry.

    Each run reads the gateway's inbound messages (Smstools inbox, SmsGateway24 ``getallsms`` status
    5, TextBoost inbound messages) from where the last run stopped: the newest ``received_at`` the
    replies table holds for this gateway and connection, less ``overlap``. A reply is stored once,
    keyed by ``(gateway, message_id)``, so re-running is safe. Each new reply gets its keyword
    verdict (``intent`` ``stop``, ``start``, ``none`` or ``ambiguous``, the latter kept for a person)
    and the campaign of the last message the ledger sent to its sender before it arrived. New STOP
    and START replies become events of the opt-out table (the newer event of a number wins); where
    the gateway keeps an opt-out list (Smstools), that list is read into it too. Both tables are the
    task's outlet Assets. docs/opt-outs.md, "Replies and opt-outs", has the details.

    Returns ``{"gateway", "replies_table", "opt_out_table", "since", "read", "new", "by_intent",
    "matched", "opted_out", "resubscribed", "not_applied", "gateway_list"}``: replies listed, stored
    for the first time, per intent, tied to a campaign; numbers this run opted out or re-subscribed;
    STOP/START replies that made no event; entries of the gateway's list read (None: not read).

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param replies_conn_id: Airflow SQL connection of the replies table (SQLite, PostgreSQL).
    :param replies_table: the replies table (created if missing; may be ``schema.table``).
    :param opt_out_conn_id: SQL connection of the opt-out table (default ``replies_conn_id``).
    :param opt_out_table: the opt-out table the send, newsletter and contact sync read (created if
        missing); None stores the replies and records no opt-out.
    :param ledger_conn_id: SQL connection of the send operator's ledger (default ``replies_conn_id``).
    :param ledger_table: the ledger replies are tied to campaigns through; None: no matching.
    :param since: read replies received from this time on instead of where the last run stopped
        (templated: datetime or ISO-8601 text).
    :param overlap: how far before the newest stored reply a run starts reading again (a timedelta
        or seconds): replies a gateway lists later than their time are still found.
    :param read_gateway_opt_outs: also read the gateway's own opt-out list where it keeps one.
    :param batch_size: replies classified, matched and written per statement.
    :param concurrent_run_timeout: seconds to wait for another run of the same gateway and
        connection to finish (they take turns) before failing.
    """

    template_fields: Sequence[str] = ("since", "replies_table", "opt_out_table", "ledger_table")
    ui_color = "#fde9d9"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        replies_conn_id: str = "sqlite_default",
        replies_table: str = "sms_replies",
        opt_out_conn_id: str | None = None,
        opt_out_table: str | None = "sms_opt_outs",
        ledger_conn_id: str | None = None,
        ledger_table: str | None = "sms_messages",
        since: datetime | str | None = None,
        overlap: timedelta | float = CLOCK_SKEW,
        read_gateway_opt_outs: bool = True,
        batch_size: int = BATCH_SIZE,
        concurrent_run_timeout: float = 900.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "outlets", replies_outlets(replies_conn_id, replies_table, opt_out_conn_id, opt_out_table)
        )
        super().__init__(**kwargs)
        for table in (replies_table, opt_out_table, ledger_table):
            if table and "{{" not in table:
                quote_name(table)  # a wrong name fails when the DAG is parsed
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sms_conn_id = sms_conn_id
        self.replies_conn_id = replies_conn_id
        self.replies_table = replies_table
        self.opt_out_conn_id = opt_out_conn_id or replies_conn_id
        self.opt_out_table = opt_out_table
        self.ledger_conn_id = ledger_conn_id or replies_conn_id
        self.ledger_table = ledger_table
        self.since = since
        self.overlap = overlap if isinstance(overlap, timedelta) else timedelta(seconds=overlap)
        self.read_gateway_opt_outs = read_gateway_opt_outs
        self.batch_size = batch_size
        self.concurrent_run_timeout = concurrent_run_timeout

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, with the same outlets default as ``__init__`` (``partial``
        fills ``outlets`` with ``[]`` before ``__init__`` runs: mapped reads would emit no event)."""
        if "outlets" not in kwargs:
            kwargs["outlets"] = replies_outlets(
                kwargs.get("replies_conn_id", "sqlite_default"),
                kwargs.get("replies_table", "sms_replies"),
                kwargs.get("opt_out_conn_id"),
                kwargs.get("opt_out_table", "sms_opt_outs"),
            )
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        intake = ReplyIntake(
            self.hook,
            conn_id=self.sms_conn_id,
            replies_conn_id=self.replies_conn_id,
            replies_table=self.replies_table,
            opt_out_conn_id=self.opt_out_conn_id,
            opt_out_table=self.opt_out_table or None,
            ledger_conn_id=self.ledger_conn_id,
            ledger_table=self.ledger_table or None,
            overlap=self.overlap,
            gateway_opt_outs=self.read_gateway_opt_outs,
            batch_size=self.batch_size,
            lock_timeout=self.concurrent_run_timeout,
            log=self.log,
        )
        done = intake.run(as_datetime(self.since) if self.since not in (None, "") else None)
        return {
            "replies_table": self.replies_table,
            "opt_out_table": self.opt_out_table or None,
            **done.as_dict(),
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the gateway's inbox and the ledger in; the replies and opt-out tables out."""
        from airflow_provider_sms.operators.lineage import gateway_dataset_id, operator_lineage

        outputs = [(self.replies_conn_id, self.replies_table)]
        if self.opt_out_table:
            outputs.append((self.opt_out_conn_id, self.opt_out_table))
        return operator_lineage(
            inputs=[gateway_dataset_id(self.hook.gateway, self.hook.base_url, "replies")],
            input_tables=[(self.ledger_conn_id, self.ledger_table)] if self.ledger_table else [],
            output_tables=outputs,
        )
