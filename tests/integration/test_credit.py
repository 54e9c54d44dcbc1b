"""The gateway-neutral balance: ``get_credit`` where the gateway has a balance endpoint."""

from __future__ import annotations

import pytest

from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.messages import Credit, OutboundMessage


@pytest.mark.parametrize(
    ("gateway", "unit", "currency"), [("smstools", "currency", "EUR"), ("textboost", "segments", None)]
)
def test_get_credit_reads_the_balance_and_follows_what_is_spent(
    gateway, unit, currency, sandbox, sms_conn_env
):
    hook = get_gateway_hook(sms_conn_env[gateway])
    assert hook.capabilities.credit == unit
    sandbox.set_balance(gateway, 50)
    assert hook.get_credit() == Credit(50.0, unit, currency)
    hook.send_messages([OutboundMessage("+4915112340001", "x" * 200)])  # two segments
    assert hook.get_credit().amount == 48.0


def test_smsgateway24_declares_no_balance(sms_conn_env):
    hook = get_gateway_hook(sms_conn_env["smsgateway24"])
    assert hook.capabilities.credit is None
    with pytest.raises(NotImplementedError):
        hook.get_credit()


def test_only_smstools_contacts_carry_an_unsubscribed_flag(sms_conn_env):
    flags = {
        gw: get_gateway_hook(conn).capabilities.contact_unsubscribed for gw, conn in sms_conn_env.items()
    }
    assert flags == {"smstools": True, "smsgateway24": False, "textboost": False}
