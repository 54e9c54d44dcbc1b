"""SmsDeliveryTrigger: waits in the triggerer until a campaign's messages have a final status.

Message ids come either with the trigger (``message_ids``) or from the message ledger
(``campaign_key`` + ``ledger_conn_id`` + ``ledger_table``). The ledger is read once, through
``asyncio.to_thread``, so the blocking SQL driver never runs on the triggerer's event loop; the
sensor passes the campaign key rather than the ids, which keeps the serialised trigger small
however large the campaign (the ids would otherwise be stored in the metadata database).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import pendulum
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sms.exceptions import SmsGatewayError, SmsTransientError
from airflow_provider_sms.hooks import aget_gateway_hook
from airflow_provider_sms.hooks.base import long_lived_frozen
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    ERROR,
    FAILED,
    SUCCESS,
    TIMEOUT,
    DeliveryProgress,
    DeliveryStatus,
    assess,
    merge_statuses,
)
from airflow_provider_sms.storage.ledger import ledger_message_ids

# Consecutive transient gateway errors (each already retried by the hook) before the trigger gives up.
MAX_CONSECUTIVE_ERRORS = 5


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return pendulum.instance(value).in_timezone("UTC").isoformat()


class SmsDeliveryTrigger(BaseTrigger):
    """Poll a gateway's status listing (async, bulk) until enough messages are final.

    Fires exactly one :class:`TriggerEvent` whose payload has ``status`` (``success``, ``failed``,
    ``timeout`` or ``error``), a readable ``message``, ``total``, ``final``, ``failed`` and
    ``counts`` (messages per normalised status; ``missing`` for ids the gateway did not list).
    It never raises out of the triggerer.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param message_ids: gateway message ids to watch; or give ``campaign_key`` and the ledger.
    :param campaign_key: read the campaign's accepted message ids from the ledger (once, in a thread).
    :param ledger_conn_id: SQL connection of the message ledger (with ``campaign_key``).
    :param ledger_table: ledger table name.
    :param since: list the gateway's messages from this time on (ISO-8601 or datetime; with a
        campaign key it defaults to the campaign's first send time minus a margin).
    :param poll_interval: seconds between polls at first and after any progress.
    :param max_poll_interval: the interval doubles while nothing changes, up to this.
    :param timeout_at: absolute deadline (ISO-8601 or datetime); after it the trigger fires ``timeout``.
        Absolute, so that a trigger restarted by another triggerer keeps the same deadline.
    :param min_final_ratio: ``success`` once at least this share of the messages is final.
    :param max_failed_ratio: ``failed`` as soon as more than this share ended undelivered, failed or
        rejected (None: never).
    """

    def __init__(
        self,
        *,
        sms_conn_id: str,
        message_ids: Iterable[str] | None = None,
        campaign_key: str | None = None,
        ledger_conn_id: str | None = None,
        ledger_table: str = "sms_messages",
        since: datetime | str | None = None,
        poll_interval: float = 30.0,
        max_poll_interval: float = 300.0,
        timeout_at: datetime | str | None = None,
        min_final_ratio: float = 1.0,
        max_failed_ratio: float | None = None,
    ) -> None:
        super().__init__()
        if (message_ids is None) == (campaign_key is None):
            raise ValueError("give exactly one of message_ids and campaign_key (with ledger_conn_id)")
        if campaign_key is not None and not ledger_conn_id:
            raise ValueError("campaign_key needs ledger_conn_id, the SQL connection of the ledger")
        if not 0 < min_final_ratio <= 1:
            raise ValueError(f"min_final_ratio must be in (0, 1], got {min_final_ratio}")
        if max_failed_ratio is not None and not 0 <= max_failed_ratio <= 1:
            raise ValueError(f"max_failed_ratio must be in [0, 1], got {max_failed_ratio}")
        self.sms_conn_id = sms_conn_id
        self.message_ids = None if message_ids is None else [str(i) for i in message_ids]
        self.campaign_key = campaign_key
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table = ledger_table
        self.since = _iso(since)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.timeout_at = _iso(timeout_at)
        self.min_final_ratio = min_final_ratio
        self.max_failed_ratio = max_failed_ratio

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sms_conn_id": self.sms_conn_id,
                "message_ids": self.message_ids,
                "campaign_key": self.campaign_key,
                "ledger_conn_id": self.ledger_conn_id,
                "ledger_table": self.ledger_table,
                "since": self.since,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "timeout_at": self.timeout_at,
                "min_final_ratio": self.min_final_ratio,
                "max_failed_ratio": self.max_failed_ratio,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            yield TriggerEvent(await self._wait())
        except Exception as exc:  # never raise out of the triggerer: report it to the task instead
            self.log.exception("SMS delivery trigger failed")
            yield TriggerEvent(DeliveryProgress(0).payload(ERROR, f"{type(exc).__name__}: {exc}"))

    async def _wait(self) -> dict[str, Any]:
        ids, since = await self._watched()
        deadline = pendulum.parse(self.timeout_at) if self.timeout_at else None
        hook = await aget_gateway_hook(self.sms_conn_id)
        known: dict[str, DeliveryStatus] = {}
        progress = assess(ids, known)
        interval, errors = self.poll_interval, 0
        while True:
            outcome = progress.outcome(self.min_final_ratio, self.max_failed_ratio)
            if outcome is not None:
                break
            try:
                statuses = await hook.aget_status_values([i for i in ids if not _final(known.get(i))], since)
            except SmsGatewayError as exc:
                errors += 1
                if not isinstance(exc, SmsTransientError) or errors >= MAX_CONSECUTIVE_ERRORS:
                    return progress.payload(ERROR, f"gateway error after {errors} attempt(s): {exc}")
                self.log.warning("Status poll failed (%s); trying again", exc)
            else:
                errors = 0
                before = progress
                progress = assess(ids, merge_statuses(known, statuses))
                self.log.info("Delivery: %s", progress.summary())
                # Poll quickly while statuses move; back off while nothing changes.
                changed = progress.counts != before.counts
                if progress.outcome(self.min_final_ratio, self.max_failed_ratio) is not None:
                    continue
                interval = self.poll_interval if changed else min(interval * 2, self.max_poll_interval)
            if deadline is not None:
                left = (deadline - pendulum.now("UTC")).total_seconds()
                if left <= 0:
                    return progress.payload(TIMEOUT, f"timed out waiting for delivery: {progress.summary()}")
                await asyncio.sleep(min(interval, left))
            else:
                await asyncio.sleep(interval)
        if outcome == FAILED:
            return progress.payload(
                FAILED,
                f"more than max_failed_ratio={self.max_failed_ratio} of the messages were not delivered: "
                + progress.summary(),
            )
        return progress.payload(SUCCESS, progress.summary())

    async def _watched(self) -> tuple[list[str], datetime | None]:
        """The ids to watch, and where the gateway's listing may start."""
        since = pendulum.parse(self.since) if self.since else None
        if self.message_ids is not None:
            return self.message_ids, since
        started = time.monotonic()
        ids, first_sent = await asyncio.to_thread(
            _ledger_ids, self.ledger_conn_id, self.ledger_table, self.campaign_key
        )
        self.log.info(
            "Read %d message ids of campaign %r from the ledger in %.1f s",
            len(ids),
            self.campaign_key,
            time.monotonic() - started,
        )
        if since is None and first_sent is not None:
            since = first_sent - CLOCK_SKEW
        return ids, since


def _ledger_ids(conn_id: str, table: str, campaign_key: str) -> tuple[list[str], datetime | None]:
    with long_lived_frozen():  # a million ids read as row tuples
        return ledger_message_ids(conn_id, table, campaign_key)


def _final(status: DeliveryStatus | None) -> bool:
    return status is not None and status.is_final
