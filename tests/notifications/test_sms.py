"""SmsNotifier sends through the sandbox gateway (the dags-test runs in tests/sensors and
tests/notifications/test_dags_test.py cover real task- and DAG-level ``on_failure_callback``)."""

from __future__ import annotations

import asyncio
import json
import os
from types import SimpleNamespace

import pendulum
import pytest
from airflow._shared.secrets_masker import mask_secret as core_mask_secret
from airflow.sdk import DAG
from airflow.sdk.log import mask_secret
from airflow.serialization.serialized_objects import DagSerialization

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.messages import InvalidPhoneNumberError, count_segments
from airflow_provider_sms.notifications.sms import SmsNotifier, send_sms_notification, shorten

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
    # A refused sender is about the request, not the recipient: the hook raises it as it came.
    with pytest.raises(SmsGatewayError, match="Invalid sender name"):
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
    assert sms.max_segments == 3
    with pytest.raises(ValueError, match="max_segments"):
        SmsNotifier(sms_conn_id="smstools_default", to="+4915110000099", message="m", max_segments=0)


# -------------------------------------------------------------------------------------------------
# What leaves: masked secrets, bounded length


def connection_password(conn_id: str) -> str:
    """The password of a connection ``sms_conn_env`` set (its ``AIRFLOW_CONN_*`` variable)."""
    return json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])["password"]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_secrets_in_the_exception_never_reach_the_gateway(gateway, sandbox, sms_conn_env):
    conn_id = sms_conn_env[gateway]
    db_password = f"Pg-Passw0rd-{gateway}-7c41e9"  # what a task registers with mask_secret
    mask_secret(db_password)
    context = failed_task_context()
    context["exception"] = ConnectionError(
        f"postgresql://etl:{db_password}@warehouse/orders refused; gateway key {connection_password(conn_id)}"
    )

    notifier(conn_id)(context)

    bodies = [m["body"] for m in sandbox.messages(gateway=gateway)]
    assert bodies == [
        "nightly_etl.load_orders failed (postgresql://etl:***@warehouse/orders refused; "
        "gateway key ***) on 2026-11-23"
    ]


def test_secrets_registered_with_the_core_masker_are_masked_too(sandbox, sms_conn_env):
    # Airflow core keeps a masker of its own (airflow._shared), apart from the task SDK's.
    token = "core-registered-token-51d0a2"
    core_mask_secret(token)
    context = failed_task_context()
    context["exception"] = PermissionError(f"token {token} expired")

    notifier(sms_conn_env["textboost"], message="{{ exception }}")(context)

    assert [m["body"] for m in sandbox.messages(gateway="textboost")] == ["token *** expired"]


# The length of the traceback whose alert Smstools refused (it takes at most 612 characters).
LONG_EXCEPTION = (
    'psycopg2.errors.UndefinedTable: relation "staging.orders_2026" does not exist\n'
    "LINE 1: INSERT INTO staging.orders_2026 SELECT * FROM raw.orders WHERE ...\n" * 12
)[:1579]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_long_exception_is_cut_to_three_segments_and_accepted(gateway, sandbox, sms_conn_env):
    assert len(LONG_EXCEPTION) == 1579
    context = failed_task_context()
    context["exception"] = RuntimeError(LONG_EXCEPTION)

    notifier(sms_conn_env[gateway], message="{{ ti.task_id }} failed: {{ exception }}")(context)

    [received] = sandbox.messages(gateway=gateway)
    body = received["body"]
    assert body.startswith("load_orders failed: psycopg2.errors.UndefinedTable: relation")
    assert body.endswith("...")
    assert received["segments"] == count_segments(body).segments == 3
    assert len(body) > 400  # the cut uses the room it has (3 GSM-7 segments: 459 characters)


def test_max_segments_bounds_the_text(sandbox, sms_conn_env):
    context = failed_task_context()
    context["exception"] = RuntimeError(LONG_EXCEPTION)

    notifier(sms_conn_env["smstools"], message="{{ exception }}", max_segments=1)(context)

    [received] = sandbox.messages(gateway="smstools")
    assert received["body"] == LONG_EXCEPTION[:157] + "..."  # 160 characters: one GSM-7 segment
    assert received["segments"] == 1


def test_shorten_keeps_short_texts_and_fills_the_segments_of_long_ones():
    assert shorten("disk full", 1) == "disk full"
    assert shorten("x" * 160, 1) == "x" * 160
    assert shorten("x" * 161, 1) == "x" * 157 + "..."
    # Outside GSM-7 a segment holds 67 UTF-16 units; the three dots keep the text's encoding.
    unicode_text = "Ошибка загрузки → " * 20
    cut = shorten(unicode_text, 2)
    assert cut.endswith("...") and unicode_text.startswith(cut[:-3])
    assert count_segments(cut).segments == 2
    one_more = unicode_text[: len(cut) - 3 + 1].rstrip() + "..."
    assert count_segments(one_more).segments == 3  # the cut is the longest text that fits


def test_a_dag_callback_with_a_serialized_dag_renders_and_sends(sandbox, sms_conn_env):
    """``airflow dags test`` hands DAG-level callbacks the SerializedDAG, which cannot make a template
    environment (apache/airflow#64649)."""
    dag = DAG("nightly_etl", schedule=None, start_date=pendulum.datetime(2026, 1, 1))
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    context = {"dag": serialized, "run_id": "manual__2026-11-23", "reason": "task_failure"}

    notifier(sms_conn_env["smsgateway24"], message="{{ dag.dag_id }} {{ run_id }}: {{ reason }}")(context)

    assert [m["body"] for m in sandbox.messages(gateway="smsgateway24")] == [
        "nightly_etl manual__2026-11-23: task_failure"
    ]
