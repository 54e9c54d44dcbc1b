"""SmsNewsletterOperator: one newsletter to whole contact lists at a scheduled time, created once.

The engine is :mod:`airflow_provider_sms.campaign.newsletter`, its table
:mod:`airflow_provider_sms.storage.newsletter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_sms.campaign.newsletter import Newsletter, NewsletterSpec
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.operators.rails import CapArgument, SafetyRails, failing_fast, rails_doc
from airflow_provider_sms.operators.send import default_campaign_key


@rails_doc(budget=True)
class SmsNewsletterOperator(SafetyRails, BaseOperator):
    """Create a newsletter to whole contact lists, at a scheduled time, exactly once per campaign key.

    - SmsGateway24: ``savepaket`` to tags (``time_to_send`` in the connection's timezone); the phone
      sends it.
    - TextBoost: ``/sms/campaign`` to contact lists, with a sender id and a schedule.
    - Smstools (no campaign object): the groups' contacts are read and sent through
      :class:`SmsBulkSendOperator`'s ledger, one message per distinct number, scheduled with ``date``.

    Which of these a gateway does is its hook's ``capabilities.newsletter``; the work is
    :class:`airflow_provider_sms.campaign.newsletter.Newsletter`.

    The newsletter table records ``sending`` before the request leaves and the gateway's id after: a
    retry returns the recorded id. If an earlier try's answer was lost, the newsletter is looked up
    where the gateway allows it (SmsGateway24: its messages carry the paket id, title and body;
    Smstools: the ledger settles each message); TextBoost cannot list campaigns, so there (and when an
    SmsGateway24 look-up finds nothing) the task fails as ambiguous rather than risk a second newsletter.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param list_ids: the contact lists (Smstools groups, SmsGateway24 tags, TextBoost contact groups)
        (templated).
    :param body: the message text (templated).
    :param title: the newsletter's title (templated; SmsGateway24 shows it); default the campaign key.
    :param send_at: when to send (templated): a datetime or an ISO 8601 text (without offset: UTC);
        default, or in the past: now.
    :param campaign_key: identifies the newsletter (templated); default
        ``<dag_id>.<task_id>.<logical date or run id>``. A retry with the same key creates nothing new.
    :param ledger_conn_id: SQL connection of the newsletter table (and of the Smstools ledger).
    :param newsletter_table: table of created newsletters.
    :param ledger_table: message ledger table (Smstools).
    :param sender: sender id or number (TextBoost ``sender_id``, Smstools ``sender``); default the
        connection's ``sender_id`` extra.
    :param sms_type: TextBoost message type (``plain``, ``unicode``...).
    :param device_id: SmsGateway24 phone; default the connection's ``device_id`` extra.
    :param sim: SmsGateway24 SIM slot; default the connection's ``sim`` extra.
    :param cost_per_segment: price of one segment in the gateway's currency (``max_cost``, a
        Smstools balance); default the connection's ``cost_per_segment`` extra.
    :param state_table: the contact sync's state table (on ``ledger_conn_id``): SmsGateway24 cannot
        list a tag, so who it holds (for the opt-outs, the cap and ``max_cost``) is read there.

    A gateway-side newsletter (SmsGateway24 paket, TextBoost campaign) reaches everyone in the
    lists: when one of them opted out (or is over ``max_messages_per_recipient``), the newsletter
    is sent through the ledger instead, one message per number, as on Smstools (the summary's
    ``via`` says how it went; a retry goes the same way).
    """

    template_fields: Sequence[str] = ("list_ids", "body", "title", "send_at", "campaign_key", "sender")
    ui_color = "#f7ece6"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        list_ids: Sequence[str | int] | str | int,
        body: str,
        title: str | None = None,
        send_at: datetime | str | None = None,
        campaign_key: str | None = None,
        ledger_conn_id: str = "sqlite_default",
        newsletter_table: str = "sms_newsletters",
        ledger_table: str = "sms_messages",
        sender: str | None = None,
        sms_type: str = "plain",
        device_id: int | None = None,
        sim: int | None = None,
        cost_per_segment: float | None = None,
        state_table: str = "sms_contact_sync",
        honour_opt_outs: bool = True,
        opt_out_conn_id: str | None = None,
        opt_out_table: str = "sms_opt_outs",
        max_messages_per_recipient: CapArgument | None = None,
        max_cost: float | None = None,
        check_balance: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sms_conn_id = sms_conn_id
        self.list_ids = list_ids
        self.body = body
        self.title = title
        self.send_at = send_at
        self.campaign_key = campaign_key
        self.ledger_conn_id = ledger_conn_id
        self.newsletter_table = newsletter_table
        self.ledger_table = ledger_table
        self.sender = sender
        self.sms_type = sms_type
        self.device_id = device_id
        self.sim = sim
        self.cost_per_segment = cost_per_segment
        self.state_table = state_table
        rails = (honour_opt_outs, opt_out_conn_id, opt_out_table, max_messages_per_recipient)
        self.set_rails(*rails, max_cost, check_balance)

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        key = self.campaign_key or default_campaign_key(context)
        spec = NewsletterSpec.of(
            list_ids=self.list_ids,
            body=self.body,
            title=self.title,
            send_at=self.send_at,
            sender=self.sender,
            sms_type=self.sms_type,
            device_id=self.device_id,
            sim=self.sim,
        )
        newsletter = Newsletter(
            self.hook,
            spec,
            sms_conn_id=self.sms_conn_id,
            table_conn_id=self.ledger_conn_id,
            table_name=self.newsletter_table,
            ledger_table=self.ledger_table,
            log=self.log,
            rails=self.rail_settings(self.ledger_conn_id, self.price(self.cost_per_segment, self.hook)),
            state_table=self.state_table,
        )
        with failing_fast():
            summary = newsletter.run(key)
        self.log.info("Newsletter %s: %s", key, summary)
        return summary
