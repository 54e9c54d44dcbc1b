"""SmsDeliverySensor: poke mode in process, deferrable mode inside ``airflow dags test`` (trigger inline)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred

from airflow_provider_sms.exceptions import SmsValidationError
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.messages import OutboundMessage
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor
from airflow_provider_sms.storage.table import SqlTable
from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger

# The sandbox's outcomes: numbers ending 13 are undelivered, 66 failed, the rest delivered.
NUMBERS = [
    "+4915110000001",
    "+4915110000002",
    "+4915110000003",
    "+4915110000004",
    "+4915110000013",
    "+4915110000066",
]
OUTCOMES = {"delivered": 4, "failed": 1, "undelivered": 1}


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="campaigns", task_id="wait", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def send_campaign(conn_id: str, ledger_conn_id: str, numbers=NUMBERS) -> None:
    SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message="Your parcel is on its way",
        audience=[{"phone": n} for n in numbers],
        ledger_conn_id=ledger_conn_id,
        campaign_key="parcels",
        sender="Shop",
    ).execute(context())


def sensor(conn_id: str, ledger_conn_id: str, **kwargs) -> SmsDeliverySensor:
    kwargs.setdefault("campaign_key", "parcels")
    return SmsDeliverySensor(task_id="wait", sms_conn_id=conn_id, ledger_conn_id=ledger_conn_id, **kwargs)


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24", "textboost"])
def test_poke_mode_waits_until_every_message_is_final(gateway, frozen_sandbox, sms_conn_env, sqlite_conn_id):
    sandbox = frozen_sandbox
    send_campaign(sms_conn_env[gateway], sqlite_conn_id)
    op = sensor(sms_conn_env[gateway], sqlite_conn_id, deferrable=False, poke_interval=0.2, timeout=60)
    # The clock moves once the first poke has its answer, not after a delay: a slow machine whose
    # first poke came late would otherwise see everything final at once and prove no waiting.
    poke, pokes = op.poke, []

    def poke_then_deliver(ctx):
        done = poke(ctx)
        pokes.append(bool(done))
        if len(pokes) == 1:
            sandbox.advance(5)
        return done

    op.poke = poke_then_deliver

    result = op.execute(context())

    assert pokes == [False, True]  # it waited: not final at first, final at the next poke
    assert result["status"] == "success"
    assert result["counts"] == OUTCOMES
    assert (result["total"], result["final"], result["failed"]) == (6, 6, 2)


def test_poke_mode_fails_with_a_summary_when_max_failed_ratio_is_exceeded(
    sandbox, sms_conn_env, sqlite_conn_id
):
    send_campaign(sms_conn_env["smsgateway24"], sqlite_conn_id)
    sandbox.advance(5)
    op = sensor(
        sms_conn_env["smsgateway24"],
        sqlite_conn_id,
        deferrable=False,
        poke_interval=0.1,
        max_failed_ratio=0.2,
    )

    with pytest.raises(AirflowFailException, match=r"max_failed_ratio=0.2.*2 not delivered \(33.3%\)"):
        op.execute(context())


def test_poke_mode_times_out_naming_the_counts(sandbox, sms_conn_env):
    hook = get_gateway_hook(sms_conn_env["smsgateway24"])
    later = pendulum.now("UTC").add(hours=2)
    ids = [
        r.message_id
        for r in hook.send_messages([OutboundMessage(n, "Hi", send_at=later) for n in NUMBERS[:2]])
    ]
    op = SmsDeliverySensor(
        task_id="wait",
        sms_conn_id=sms_conn_env["smsgateway24"],
        message_ids=ids,
        deferrable=False,
        poke_interval=0.1,
        timeout=0.3,
    )

    with pytest.raises(AirflowSensorTimeout, match=r"0 of 2 messages final.*scheduled 2"):
        op.execute(context())


def test_enough_final_messages_satisfy_min_final_ratio(sandbox, sms_conn_env, sqlite_conn_id):
    send_campaign(sms_conn_env["textboost"], sqlite_conn_id)
    op = sensor(sms_conn_env["textboost"], sqlite_conn_id, deferrable=False, min_final_ratio=0.5)
    sandbox.advance(5)

    assert op.execute(context())["final"] == 6


def test_deferrable_mode_defers_to_a_trigger_that_reads_the_ledger(
    frozen_sandbox, sms_conn_env, sqlite_conn_id
):
    # The clock is stopped: on a slow machine the campaign must not turn final (and, two of six not
    # delivered being over max_failed_ratio, fail instead of deferring) before the sensor's first poll.
    send_campaign(sms_conn_env["smsgateway24"], sqlite_conn_id)
    op = sensor(
        sms_conn_env["smsgateway24"], sqlite_conn_id, poke_interval=2, timeout=600, max_failed_ratio=0.1
    )

    before = pendulum.now("UTC")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    after = pendulum.now("UTC")

    trigger = deferred.value.trigger
    assert isinstance(trigger, SmsDeliveryTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["campaign_key"] == "parcels"
    assert kwargs["message_ids"] is None  # the trigger reads them itself: small serialised kwargs
    assert kwargs["ledger_conn_id"] == sqlite_conn_id
    assert (kwargs["poll_interval"], kwargs["max_failed_ratio"]) == (2.0, 0.1)
    # 600 s after the poll, however long the poll took
    assert before.add(seconds=600) <= pendulum.parse(kwargs["timeout_at"]) <= after.add(seconds=600)
    assert pendulum.parse(kwargs["since"]) < before
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() > 600  # Airflow's own timeout only backs up the trigger's


def test_deferrable_mode_returns_at_once_when_the_campaign_is_already_final(
    sandbox, sms_conn_env, sqlite_conn_id
):
    send_campaign(sms_conn_env["smstools"], sqlite_conn_id)
    sandbox.advance(5)

    result = sensor(sms_conn_env["smstools"], sqlite_conn_id).execute(context())

    assert result["counts"] == OUTCOMES


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_campaign_key_with_no_ledger_rows_fails_naming_the_key_and_the_table(
    deferrable, sandbox, sms_conn_env, sql_conn_id
):
    send_campaign(sms_conn_env["smstools"], sql_conn_id)  # under "parcels"
    op = sensor(
        sms_conn_env["smstools"], sql_conn_id, campaign_key="parcel", deferrable=deferrable, timeout=60
    )
    with pytest.raises(
        AirflowFailException, match=r"campaign 'parcel' has no rows in the ledger table 'sms_messages'"
    ):
        op.execute(context())


def test_a_campaign_with_no_accepted_message_fails_with_its_states(sandbox, sms_conn_env, sqlite_conn_id):
    with pytest.raises(SmsValidationError, match="2 of 2 recipients were rejected"):
        send_campaign(sms_conn_env["smstools"], sqlite_conn_id, numbers=["12", "not a number"])
    op = sensor(sms_conn_env["smstools"], sqlite_conn_id, deferrable=False, timeout=60)
    with pytest.raises(
        AirflowFailException, match=r"no accepted message to watch .*: its rows are rejected 2"
    ):
        op.execute(context())


def test_the_trigger_reports_an_empty_campaign_as_an_error_event(sms_conn_env, sqlite_conn_id):
    from airflow_provider_sms.storage.ledger import MessageLedger

    ledger = MessageLedger(sqlite_conn_id)
    ledger.ensure_table()
    ledger.close()
    trigger = SmsDeliveryTrigger(
        sms_conn_id=sms_conn_env["smstools"],
        campaign_key="nothing",
        ledger_conn_id=sqlite_conn_id,
        poll_interval=0.1,
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "error"
    assert "campaign 'nothing' has no rows in the ledger table 'sms_messages'" in payload["message"]


def test_an_empty_list_of_message_ids_fails():
    op = SmsDeliverySensor(task_id="w", sms_conn_id="c", message_ids=[], deferrable=False)
    with pytest.raises(AirflowFailException, match="message_ids is empty"):
        op.poke(context())


def test_trigger_events_become_results_or_clear_failures():
    op = SmsDeliverySensor(task_id="wait", sms_conn_id="smstools_default", message_ids=["1"])
    event = {"status": "success", "message": "1 of 1", "total": 1, "final": 1, "failed": 0, "counts": {}}
    assert op.execute_complete(context(), event) == event
    with pytest.raises(AirflowFailException, match="too many"):
        op.execute_complete(context(), {**event, "status": "failed", "message": "too many"})
    with pytest.raises(AirflowSensorTimeout, match="0 of 1"):
        op.execute_complete(context(), {**event, "status": "timeout", "message": "0 of 1"})
    with pytest.raises(AirflowException, match="trigger failed: boom"):
        op.execute_complete(context(), {**event, "status": "error", "message": "boom"})


def test_message_ids_rendered_to_text_by_a_template_are_read_back():
    listed = SmsDeliverySensor(task_id="w", sms_conn_id="c", message_ids="['62800001', '62800002']")
    joined = SmsDeliverySensor(task_id="w", sms_conn_id="c", message_ids="62800001, 62800002")
    assert listed.watched == joined.watched == (["62800001", "62800002"], None)


def test_needs_a_campaign_or_message_ids():
    with pytest.raises(ValueError, match="exactly one"):
        SmsDeliverySensor(task_id="wait", sms_conn_id="smstools_default")
    assert SmsDeliverySensor(task_id="w", sms_conn_id="c", message_ids=["1"]).deferrable is True


DAG_FILE = """
import pendulum
from airflow.sdk import DAG, task

from airflow_provider_sms.notifications.sms import SmsNotifier
from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor

SMS = "smsgateway24_sandbox"
WAREHOUSE = "{warehouse}"

with DAG("sms_delivery_e2e", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    send = SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=SMS,
        message="Your parcel is on its way",
        audience=[{{"phone": n}} for n in {numbers!r}],
        ledger_conn_id=WAREHOUSE,
        campaign_key="parcels",
    )
    wait = SmsDeliverySensor(
        task_id="wait", sms_conn_id=SMS, campaign_key="parcels", ledger_conn_id=WAREHOUSE,
        poke_interval=0.5, timeout=300,
    )
    report = SmsDeliveryReportOperator(task_id="report", sms_conn_id=SMS, report_conn_id=WAREHOUSE)
    send >> wait >> report

    @task(
        on_failure_callback=SmsNotifier(
            sms_conn_id="smstools_sandbox",
            to=["+4915110000099"],
            sender="Airflow",
            message="{{{{ ti.task_id }}}} failed in {{{{ dag.dag_id }}}}",
        )
    )
    def broken():
        raise ValueError("boom")

    @task(trigger_rule="all_done")  # keeps the run green, so the exit code speaks for the rest
    def after_broken():
        pass

    broken() >> after_broken()
"""


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_deferrable_sensor_report_and_failure_notifier_in_airflow_dags_test(
    sandbox, sms_conn_env, sqlite_conn_id, tmp_path
):
    """One ``airflow dags test`` run (the slowest test here: two Airflow CLI start-ups): send, wait
    in the inline trigger, report; a failing task texts its failure through another gateway."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sms_delivery_e2e.py").write_text(
        textwrap.dedent(DAG_FILE.format(warehouse=sqlite_conn_id, numbers=NUMBERS))
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = [sys.executable, "-m", "airflow"]
    started = time.monotonic()
    migrate = subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    run = subprocess.run(
        [*airflow, "dags", "test", "sms_delivery_e2e"], env=env, capture_output=True, text=True
    )
    print(f"airflow db migrate + dags test took {time.monotonic() - started:.0f} s")

    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    assert "running trigger in line" in log  # the sensor deferred, and the trigger decided
    assert "Delivery complete: 6 of 6 messages final" in log
    warehouse = SqlTable(sqlite_conn_id, "sms_delivery_report")
    try:
        statuses = warehouse.query("SELECT status, COUNT(*) FROM sms_delivery_report GROUP BY status")
        ledger = warehouse.query("SELECT state, status, COUNT(*) FROM sms_messages GROUP BY state, status")
    finally:
        warehouse.close()
    assert dict(statuses) == OUTCOMES
    assert sorted(ledger) == [
        ("accepted", "delivered", 4),
        ("accepted", "failed", 1),
        ("accepted", "undelivered", 1),
    ]
    texts = sandbox.messages(gateway="smstools")
    assert [(m["recipient"], m["body"], m["count"]) for m in texts] == [
        ("+4915110000099", "broken failed in sms_delivery_e2e", 1)
    ]
    assert len(sandbox.messages(gateway="smsgateway24")) == 6
