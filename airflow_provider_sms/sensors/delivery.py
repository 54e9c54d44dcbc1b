"""SmsDeliverySensor: wait until a campaign's messages have a final delivery status."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import pendulum
from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_provider_sms.exceptions import NothingToWatchError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    ERROR,
    FAILED,
    SUCCESS,
    TIMEOUT,
    DeliveryProgress,
    DeliveryStatus,
    as_datetime,
    assess,
    merge_statuses,
)
from airflow_provider_sms.storage.ledger import ledger_message_ids
from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger

# The deferral's own timeout comes this long after the trigger's deadline: the trigger fires its
# "timeout" event (with the counts) first, and Airflow's timeout only catches a lost trigger.
DEFERRAL_GRACE = timedelta(minutes=5)


class SmsDeliverySensor(BaseSensorOperator):
    """Wait until all (or ``min_final_ratio`` of) a campaign's messages have a final status.

    Final is delivered, undelivered, failed or rejected. Deferrable by default: the wait runs in
    the triggerer (:class:`~airflow_provider_sms.triggers.delivery.SmsDeliveryTrigger`) and frees
    the worker slot; with ``deferrable=False`` it pokes (``mode="poke"`` or ``"reschedule"``).
    Statuses are read in bulk from the gateway's list endpoint, never one request per message.
    Returns (XCom) ``{"status", "message", "total", "final", "failed", "counts"}``.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param campaign_key: the campaign in the message ledger (templated); its accepted messages are watched.
    :param message_ids: or the gateway message ids to watch (templated), instead of ``campaign_key``.
    :param ledger_conn_id: SQL connection of the message ledger.
    :param ledger_table: ledger table name.
    :param min_final_ratio: succeed once at least this share of the messages is final (default: all).
    :param max_failed_ratio: fail (without retry) as soon as more than this share ended undelivered,
        failed or rejected; None (default) never fails on outcomes.
    :param since: list the gateway's messages from this time on (templated; default: the campaign's
        first send time in the ledger, minus a margin).
    :param max_poll_interval: deferrable mode: seconds the poll interval may back off to while
        nothing changes (it starts at ``poke_interval``).
    :param deferrable: wait in the triggerer (default True).
    :param poke_interval: seconds between polls (default 30).
    :param timeout: seconds before the sensor gives up (``AirflowSensorTimeout``, with the counts).
    """

    template_fields: Sequence[str] = ("campaign_key", "message_ids", "since")
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        campaign_key: str | None = None,
        message_ids: Sequence[str] | None = None,
        ledger_conn_id: str = "sqlite_default",
        ledger_table: str = "sms_messages",
        min_final_ratio: float = 1.0,
        max_failed_ratio: float | None = None,
        since: datetime | str | None = None,
        max_poll_interval: float = 300.0,
        deferrable: bool = True,
        poke_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if (campaign_key is None) == (message_ids is None):
            raise ValueError("give exactly one of campaign_key (read from the ledger) and message_ids")
        if not 0 < min_final_ratio <= 1:
            raise ValueError(f"min_final_ratio must be in (0, 1], got {min_final_ratio}")
        if max_failed_ratio is not None and not 0 <= max_failed_ratio <= 1:
            raise ValueError(f"max_failed_ratio must be in [0, 1], got {max_failed_ratio}")
        self.sms_conn_id = sms_conn_id
        self.campaign_key = campaign_key
        self.message_ids = message_ids
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table = ledger_table
        self.min_final_ratio = min_final_ratio
        self.max_failed_ratio = max_failed_ratio
        self.since = since
        self.max_poll_interval = max_poll_interval
        self.deferrable = deferrable
        self._known: dict[str, DeliveryStatus] = {}
        self._progress: DeliveryProgress | None = None

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    @cached_property
    def watched(self) -> tuple[list[str], datetime | None]:
        """The message ids to watch and where the gateway's listing may start. Nothing to watch is
        a failure, not a success ("0 of 0 final"), and waiting would not change it."""
        since = as_datetime(self.since)
        if self.message_ids is not None:
            ids = _id_list(self.message_ids)
            if not ids:
                raise AirflowFailException("message_ids is empty: there is no message to watch")
            return ids, since
        try:
            ids, first_sent = ledger_message_ids(self.ledger_conn_id, self.ledger_table, self.campaign_key)
        except NothingToWatchError as exc:
            raise AirflowFailException(str(exc)) from None
        if since is None and first_sent is not None:
            since = first_sent - CLOCK_SKEW
        self.log.info("Watching %d messages of campaign %r", len(ids), self.campaign_key)
        return ids, since

    # ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                summary = self._progress.summary() if self._progress else "no status read"
                raise AirflowSensorTimeout(f"{exc} {summary}") from exc
        # One poll here first: a campaign that is already final never occupies the triggerer.
        done = self.poke(context)
        if done:
            return done.xcom_value
        trigger = SmsDeliveryTrigger(
            sms_conn_id=self.sms_conn_id,
            message_ids=None if self.campaign_key is not None else self.watched[0],
            campaign_key=self.campaign_key,
            ledger_conn_id=self.ledger_conn_id if self.campaign_key is not None else None,
            ledger_table=self.ledger_table,
            since=self.watched[1],
            poll_interval=self.poke_interval,
            max_poll_interval=self.max_poll_interval,
            timeout_at=pendulum.now("UTC").add(seconds=self.timeout),
            min_final_ratio=self.min_final_ratio,
            max_failed_ratio=self.max_failed_ratio,
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the counts or fail with the trigger's summary."""
        if not event:
            raise AirflowException("the delivery trigger fired without an event")
        status, message = event.get("status"), event.get("message", "")
        if status == SUCCESS:
            self.log.info("Delivery complete: %s", message)
            return event
        if status == FAILED:
            raise AirflowFailException(message)
        if status == TIMEOUT:
            raise AirflowSensorTimeout(message)
        if status == ERROR:
            raise AirflowException(f"the delivery trigger failed: {message}")
        raise AirflowException(f"unexpected event from the delivery trigger: {event!r}")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        ids, since = self.watched
        pending = [i for i in ids if not (i in self._known and self._known[i].is_final)]
        statuses = self.hook.get_status_values(pending, since) if pending else {}
        progress = self._progress = assess(ids, merge_statuses(self._known, statuses))
        self.log.info("Delivery: %s", progress.summary())
        outcome = progress.outcome(self.min_final_ratio, self.max_failed_ratio)
        if outcome == FAILED:
            # Final statuses never change, so a retry could not succeed: fail without one.
            raise AirflowFailException(
                f"more than max_failed_ratio={self.max_failed_ratio} of the messages were not delivered: "
                + progress.summary()
            )
        if outcome == SUCCESS:
            return PokeReturnValue(is_done=True, xcom_value=progress.payload(SUCCESS, progress.summary()))
        return False


def _id_list(value: Sequence[str] | str) -> list[str]:
    """Message ids as given, or as a template rendered them to text (``"['a', 'b']"`` or ``"a,b"``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(i) for i in ast.literal_eval(text)]
        return [part.strip() for part in text.split(",") if part.strip()]
    return [str(i) for i in value]
