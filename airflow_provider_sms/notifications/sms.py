"""SmsNotifier: task and DAG callbacks by SMS, through any of the three gateways."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseNotifier, Context

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import OutboundMessage, SendResult, normalize_phone


class SmsNotifier(BaseNotifier):
    """Send an SMS when a task or DAG run calls back, e.g.
    ``on_failure_callback=SmsNotifier(sms_conn_id="smstools_default", to=["+4915..."], message="...")``.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param to: one number or a list of numbers (any format ``normalize_phone`` reads; templated).
    :param message: the text, an Airflow template rendered with the callback's context
        (``{{ ti.task_id }}``, ``{{ dag.dag_id }}``, ``{{ run_id }}``...).
    :param sender: sender id or number (templated); defaults to the connection's.
    :param message_options: gateway-specific send fields (``sim``, ``type``...).
    """

    template_fields: Sequence[str] = ("to", "message", "sender")

    def __init__(
        self,
        *,
        sms_conn_id: str,
        to: str | Sequence[str],
        message: str,
        sender: str | None = None,
        message_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.message_options = dict(message_options or {})

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def _messages(self) -> list[OutboundMessage]:
        """The send parameters, built once for both :meth:`notify` and :meth:`async_notify`."""
        numbers = [self.to] if isinstance(self.to, str) else list(self.to)
        region = self.hook.extra("default_region")
        return [
            OutboundMessage(
                to=normalize_phone(number, region),
                body=self.message,
                sender=self.sender,
                options=self.message_options,
            )
            for number in numbers
        ]

    def _send(self) -> list[SendResult]:
        results = self.hook.send_messages(self._messages())
        refused = [r for r in results if not r.accepted]
        self.log.info("SMS notification sent to %d of %d numbers", len(results) - len(refused), len(results))
        if refused:
            reasons = "; ".join(f"{r.message.to}: {r.error}" for r in refused)
            raise SmsGatewayError(f"the gateway refused {len(refused)} notification(s): {reasons}")
        return results

    def notify(self, context: Context) -> None:
        self._send()

    async def async_notify(self, context: Context) -> None:
        # The gateways' send calls are synchronous (requests); run them off the event loop.
        await asyncio.to_thread(self._send)


send_sms_notification = SmsNotifier
