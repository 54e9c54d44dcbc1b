"""A failed run of a real ``airflow dags test`` texts its alerts through the sandbox: the DAG-level
``on_failure_callback`` (which Airflow hands a SerializedDAG there, apache/airflow#64649) and a
task-level one whose ``{{ exception }}`` holds a secret the task registered with ``mask_secret``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.leakscan import airflow_dags_test, airflow_env

pytestmark = pytest.mark.integration

DB_PASSWORD = "Wh-Passw0rd-3f9c1b7e"  # the task's own secret, registered with mask_secret

DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG, task
from airflow.sdk.log import mask_secret

from airflow_provider_sms.notifications.sms import SmsNotifier

with DAG(
    "sms_failure_alert",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    on_failure_callback=SmsNotifier(
        sms_conn_id="smstools_sandbox",
        to="+4915110000099",
        sender="Airflow",
        message="{{{{ dag.dag_id }}}} failed: {{{{ reason }}}} in {{{{ ti.task_id }}}}",
    ),
):

    @task(
        on_failure_callback=SmsNotifier(
            sms_conn_id="textboost_sandbox",
            to="+4915110000098",
            message="{{{{ ti.task_id }}}}: {{{{ exception }}}}",
        )
    )
    def load_orders():
        mask_secret("{DB_PASSWORD}")
        raise ConnectionError("postgresql://etl:{DB_PASSWORD}@warehouse/orders refused")

    load_orders()
'''


@pytest.mark.timeout(900)
def test_a_failed_run_texts_the_dag_and_task_alerts_without_the_secret(sandbox, sms_conn_env, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sms_failure_alert.py").write_text(DAG_FILE)
    home = tmp_path / "airflow"
    connections = {
        conn_id: json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
        for conn_id in sms_conn_env.values()
    }

    [_, run] = airflow_dags_test(home, airflow_env(home, dags, connections), ["sms_failure_alert"])

    log = Path(run.output).read_text()
    task_alerts = [(m["recipient"], m["body"]) for m in sandbox.messages(gateway="textboost")]
    assert task_alerts == [("+4915110000098", "load_orders: postgresql://etl:***@warehouse/orders refused")]
    dag_alerts = [(m["recipient"], m["body"], m["count"]) for m in sandbox.messages(gateway="smstools")]
    assert dag_alerts == [("+4915110000099", "sms_failure_alert failed: task_failure in load_orders", 1)]
    assert run.returncode != 0  # the run failed, as it should
    assert "Executing on_failure dag callback" in log
    assert "Callback failed" not in log, log[-5000:]
