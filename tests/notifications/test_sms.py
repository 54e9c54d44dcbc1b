"""SmsNotifier sends through the sandbox gateway (the dags-test run in tests/sensors covers a real
``on_failure_callback``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.messages import InvalidPhoneNumberError
from airflow_provider_sms.notifications.sms import SmsNotifier, send_sms_notification

GATEWAYS = ["smstools", "smsgateway24", "textboost"]


def failed_task_context() -> dict:
    """What Airflow hands an ``on_failure_callback``: the failed task instance and its exception."""
    return {
        "ti": SimpleNamespace(dag_id="nightly_etl", task_id="load_orders", try_number=3, map_index=-1),
        "run_id": "scheduled__2026-11-23T02:00:00+00:00",
        "ds": "2026-11-23",
        "exception": ValueError("orders table is empty"),
        "params": {},
    }


def notifier(conn_id: str, **kwargs) -> SmsNotifier:
    kwargs.setdefault("to", ["+4915110000099"])
    return SmsNotifier(
        sms_conn_id=conn_id,
        message=kwargs.pop(
            "message", "{{ ti.dag_id }}.{{ ti.task_id }} failed ({{ exception }}) on {{ ds }}"
        ),
        **{"sender": "Airflow", **kwargs},
    )


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_failing_task_sends_one_rendered_sms(gateway, sandbox, sms_conn_env):
    notifier(sms_conn_env[gateway])(failed_task_context())

    received = sandbox.messages(gateway=gateway)
    assert [(m["recipient"], m["body"], m["count"]) for m in received] == [
        ("+4915110000099", "nightly_etl.load_orders failed (orders table is empty) on 2026-11-23", 1)
    ]


def test_each_number_gets_one_message_whatever_its_format(sandbox, sms_conn_env):
    notifier(sms_conn_env["smstools"], to="0049 151 10000099")(failed_task_context())
    notifier(sms_conn_env["smstools"], to=["+49 151 10000098", "004915110000097"], message="disk full")(
        failed_task_context()
    )

    received = sorted((m["recipient"], m["body"]) for m in sandbox.messages(gateway="smstools"))
    assert received == [
        ("+4915110000097", "disk full"),
        ("+4915110000098", "disk full"),
        ("+4915110000099", "nightly_etl.load_orders failed (orders table is empty) on 2026-11-23"),
    ]


def test_async_notify_sends_the_same_message(sandbox, sms_conn_env):
    context = failed_task_context()
    sms = notifier(sms_conn_env["textboost"], message="{{ ti.task_id }} failed")
    sms.render_template_fields(context)

    asyncio.run(sms.async_notify(context))

    assert [m["body"] for m in sandbox.messages(gateway="textboost")] == ["load_orders failed"]


def test_a_refusal_by_the_gateway_is_raised(sandbox, sms_conn_env):
    sms = notifier(sms_conn_env["smstools"])
    sms.sender = "Not a valid sender name"  # longer than 11 characters: the gateway refuses it
    with pytest.raises(SmsGatewayError, match="refused 1 notification"):
        sms(failed_task_context())


def test_an_unreadable_number_is_refused_before_sending(sandbox, sms_conn_env):
    with pytest.raises(InvalidPhoneNumberError):
        notifier(sms_conn_env["smstools"], to="call me")(failed_task_context())
    assert sandbox.messages() == []


def test_function_alias_and_templated_fields():
    assert send_sms_notification is SmsNotifier
    assert set(SmsNotifier.template_fields) == {"to", "message", "sender"}
    sms = send_sms_notification(sms_conn_id="smstools_default", to="+4915110000099", message="m")
    assert sms.to == "+4915110000099"
