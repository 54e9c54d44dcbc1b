"""SmsNotifier: task and DAG callbacks by SMS, through any of the three gateways."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier, Context

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import OutboundMessage, SendResult, count_segments, normalize_phone

if TYPE_CHECKING:
    import jinja2

DEFAULT_MAX_SEGMENTS = 3
# Three dots, not "…": that character is outside GSM-7 and would turn the whole text into UCS-2,
# which fits less than half as much per segment.
ELLIPSIS = "..."


def _airflow_redactors() -> list[Callable[[str], Any]]:
    """Airflow's ``redact`` of every secrets masker this process has.

    The task SDK and Airflow core each keep their own masker (``airflow.sdk._shared`` and
    ``airflow._shared``: separate registries), and a callback may run beside either, so both are asked.
    """
    redactors = []
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.sdk.execution_time.secrets_masker import redact
    redactors.append(redact)
    try:
        from airflow._shared.secrets_masker import redact as core_redact
    except ImportError:  # a worker with the task SDK only, or an Airflow without the split
        pass
    else:
        if core_redact is not redact:
            redactors.append(core_redact)
    return redactors


def shorten(text: str, max_segments: int) -> str:
    """``text`` cut to fit in ``max_segments`` SMS segments, ending with :data:`ELLIPSIS` when cut."""
    if count_segments(text).segments <= max_segments:
        return text
    # The longest prefix that fits with the ellipsis; segments only grow with the prefix's length.
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_segments(text[:middle].rstrip() + ELLIPSIS).segments <= max_segments:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS


class SmsNotifier(BaseNotifier):
    """Send an SMS when a task or DAG run calls back, e.g.
    ``on_failure_callback=SmsNotifier(sms_conn_id="smstools_default", to=["+4915..."], message="...")``.

    The rendered text is passed through Airflow's secrets masker (values registered with
    ``mask_secret``, connection passwords...) and the hook's scrubber before it leaves, and is cut to
    ``max_segments`` segments, so that a long ``{{ exception }}`` still makes an alert the gateway accepts.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param to: one number or a list of numbers (any format ``normalize_phone`` reads; templated).
    :param message: the text, an Airflow template rendered with the callback's context
        (``{{ ti.task_id }}``, ``{{ dag.dag_id }}``, ``{{ run_id }}``, ``{{ exception }}``...).
    :param sender: sender id or number (templated); defaults to the connection's.
    :param message_options: gateway-specific send fields (``sim``, ``type``...).
    :param max_segments: longest text sent, in SMS segments; a longer one is cut and ends with "...".
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
        max_segments: int = DEFAULT_MAX_SEGMENTS,
    ) -> None:
        super().__init__()
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, not {max_segments}")
        self.sms_conn_id = sms_conn_id
        self.to = to
        self.message = message
        self.sender = sender
        self.message_options = dict(message_options or {})
        self.max_segments = max_segments

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def get_template_env(self, dag: Any = None) -> jinja2.Environment:
        # Under `airflow dags test` a DAG-level callback gets the SerializedDAG, which has no
        # get_template_env (apache/airflow#64649): render with Airflow's sandboxed environment instead.
        if dag is not None and not hasattr(dag, "get_template_env"):
            dag = None
        return super().get_template_env(dag=dag)

    def _body(self) -> str:
        """The rendered message as it may leave: secrets masked, then cut to ``max_segments``."""
        body = str(self.message)
        for redact in _airflow_redactors():
            body = redact(body)
        body = self.hook.scrub(body)
        # Cut after masking: a cut first could leave part of a secret that no mask matches any more.
        shortened = shorten(body, self.max_segments)
        if shortened != body:
            self.log.info(
                "SMS notification shortened from %d to %d segments (max_segments=%d)",
                count_segments(body).segments,
                count_segments(shortened).segments,
                self.max_segments,
            )
        return shortened

    def _messages(self) -> list[OutboundMessage]:
        """The send parameters, built once for both :meth:`notify` and :meth:`async_notify`."""
        numbers = [self.to] if isinstance(self.to, str) else list(self.to)
        region = self.hook.extra("default_region")  # also loads the connection, whose secrets scrub needs
        body = self._body()
        return [
            OutboundMessage(
                to=normalize_phone(number, region),
                body=body,
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
            reasons = self.hook.scrub("; ".join(f"{r.message.to}: {r.error}" for r in refused))
            raise SmsGatewayError(f"the gateway refused {len(refused)} notification(s): {reasons}")
        return results

    def notify(self, context: Context) -> None:
        self._send()

    async def async_notify(self, context: Context) -> None:
        # The gateways' send calls are synchronous (requests); run them off the event loop.
        await asyncio.to_thread(self._send)


send_sms_notification = SmsNotifier
