"""No secret leaves through logs, XComs, rendered template fields or exception texts.

A small DAG (written to a temporary DAGs folder) sends, syncs contacts and reads delivery reports on
all three gateways with distinctive secrets in its connections, and also fails on purpose with
wrong (equally distinctive) secrets; ``airflow dags test`` runs it in a fresh ``AIRFLOW_HOME``
against a sandbox that accepts those secrets. Then everything the run left is scanned (see
``leakscan.py``, which can point at ``example_dags/`` the same way): 0 occurrences allowed.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.sandbox.testing import run_sandbox

from .helpers import task_context
from .leakscan import (
    METADATA_TABLES,
    LeakScanner,
    airflow_dags_test,
    airflow_env,
    distinctive_secrets,
    gateway_connections,
    sandbox_credentials,
)

pytestmark = pytest.mark.integration

GATEWAYS = ("smstools", "smsgateway24", "textboost")
DAG_ID = "sms_leak_scan"
DAG_SOURCE = '''
"""Every operator of the provider on every gateway, with the connections the leak scan set up."""
import pendulum
from airflow.sdk import DAG

from airflow_provider_sms.operators.contacts import SmsContactSyncOperator
from airflow_provider_sms.operators.replies import SmsRepliesOperator
from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator

AUDIENCE = [{{"phone": f"+49151{{30_000_000 + i:08d}}", "first_name": name}} for i, name in enumerate(
    ["Ana", "Ben", "Chloé", "Dmitri", "Eve", "Finn", "Gül", "Hana"]
)]

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    for gateway in {gateways!r}:
        send = SmsBulkSendOperator(
            task_id=f"send_{{gateway}}",
            sms_conn_id=f"leak_{{gateway}}",
            message="Hi {{{{ first_name }}}}, your code is 1234",
            audience=AUDIENCE,
            ledger_conn_id="leak_warehouse",
            ledger_table=f"ledger_{{gateway}}",
        )
        report = SmsDeliveryReportOperator(
            task_id=f"report_{{gateway}}",
            sms_conn_id=f"leak_{{gateway}}",
            report_conn_id="leak_warehouse",
            report_table=f"report_{{gateway}}",
            ledger_table=f"ledger_{{gateway}}",
        )
        send >> report
        send >> SmsRepliesOperator(
            task_id=f"replies_{{gateway}}",
            sms_conn_id=f"leak_{{gateway}}",
            replies_conn_id="leak_warehouse",
            replies_table=f"replies_{{gateway}}",
            opt_out_table=f"opt_outs_{{gateway}}",
            ledger_table=f"ledger_{{gateway}}",
        )
        SmsContactSyncOperator(
            task_id=f"sync_{{gateway}}",
            sms_conn_id=f"leak_{{gateway}}",
            data=AUDIENCE,
            list_name="leak-scan",
            create_list_if_missing=True,
            state_conn_id="leak_warehouse",
            state_table=f"sync_{{gateway}}",
        )
        # Wrong secrets: these fail, and their exception texts are scanned too.
        SmsBulkSendOperator(
            task_id=f"wrong_secret_send_{{gateway}}",
            sms_conn_id=f"leak_wrong_{{gateway}}",
            message="Hi {{{{ first_name }}}}",
            audience=AUDIENCE,
            ledger_conn_id="leak_warehouse",
            ledger_table=f"wrong_ledger_{{gateway}}",
        )
        SmsDeliveryReportOperator(
            task_id=f"wrong_secret_report_{{gateway}}",
            sms_conn_id=f"leak_wrong_{{gateway}}",
            report_conn_id="leak_warehouse",
            report_table=f"wrong_report_{{gateway}}",
            ledger_table=None,
        )
        SmsRepliesOperator(
            task_id=f"wrong_secret_replies_{{gateway}}",
            sms_conn_id=f"leak_wrong_{{gateway}}",
            replies_conn_id="leak_warehouse",
            replies_table=f"wrong_replies_{{gateway}}",
            opt_out_table=None,
            ledger_table=None,
        )
'''


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory):
    """Run the DAG once for the module; yields (secrets, airflow_home, warehouse, task states, cli runs)."""
    secrets = distinctive_secrets()
    root = tmp_path_factory.mktemp("leakscan")
    dags, home, warehouse = root / "dags", root / "airflow", root / "warehouse.db"
    dags.mkdir()
    home.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_SOURCE.format(dag_id=DAG_ID, gateways=GATEWAYS))
    with run_sandbox(**sandbox_credentials(secrets)) as sandbox:
        connections = gateway_connections(sandbox.url, secrets)
        connections["leak_warehouse"] = {"conn_type": "sqlite", "host": str(warehouse)}
        runs = airflow_dags_test(home, airflow_env(home, dags, connections), [DAG_ID])
        sandbox_messages = len(sandbox.messages())
    with closing(sqlite3.connect(home / "airflow.db")) as meta:
        states = dict(meta.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)))
    return secrets, home, warehouse, states, runs, sandbox_messages


def test_the_dag_really_ran_every_operator(leak_run):
    """The scan means something only if the tasks ran: good secrets succeed, wrong ones fail."""
    _, _, _, states, runs, sandbox_messages = leak_run
    output = "\n".join(run.output.read_text()[-2000:] for run in runs)
    for gateway in GATEWAYS:
        for task in (f"send_{gateway}", f"report_{gateway}", f"sync_{gateway}", f"replies_{gateway}"):
            assert states.get(task) == "success", (task, states, output)
        wrong = ("send", "report", "replies")
        for task in (f"wrong_secret_{what}_{gateway}" for what in wrong):
            assert states.get(task) == "failed", (task, states, output)
    assert sandbox_messages == 3 * 8


def test_no_secret_in_logs_xcoms_rendered_fields_or_databases(leak_run):
    secrets, home, warehouse, _, _, _ = leak_run
    scanner = LeakScanner(secrets, basic_auth_users=["sandbox-client-id", "sandbox@example.com"])
    files = scanner.scan_path(home)  # task logs, CLI output, airflow.cfg, the metadata DB's raw bytes
    tables = scanner.scan_sqlite(home / "airflow.db", METADATA_TABLES)
    scanner.scan_sqlite(warehouse)  # ledger, report, sync state, replies, opt-out and reject tables
    scanner.scan_path(warehouse)

    assert files > 3
    assert tables.get("xcom", 0) > 0, tables  # the sends' and reports' return values are there
    assert scanner.findings == []


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_no_secret_in_exception_texts_or_test_connection_messages(gateway, monkeypatch, sqlite_conn_id):
    """In process, so the exception objects themselves (text, repr, attributes, traceback) are seen."""
    import json

    from airflow_provider_sms.hooks import get_gateway_hook
    from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
    from airflow_provider_sms.operators.send import SmsBulkSendOperator

    secrets = distinctive_secrets()
    scanner = LeakScanner(secrets, basic_auth_users=["sandbox-client-id", "sandbox@example.com"])
    with run_sandbox(**sandbox_credentials(secrets)) as sandbox:
        for conn_id, conn in gateway_connections(sandbox.url, secrets).items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        wrong = f"leak_wrong_{gateway}"
        ok, message = get_gateway_hook(wrong).test_connection()
        assert not ok
        scanner.scan_text(message, "test_connection")
        for op in (
            SmsBulkSendOperator(
                task_id="send",
                sms_conn_id=wrong,
                message="Hi",
                audience=[{"phone": "+4915112345678"}],
                ledger_conn_id=sqlite_conn_id,
            ),
            SmsDeliveryReportOperator(
                task_id="report", sms_conn_id=wrong, report_conn_id=sqlite_conn_id, ledger_table=None
            ),
        ):
            with pytest.raises(SmsGatewayError) as caught:
                op.execute(task_context())
            scanner.scan_exception(caught.value, f"{op.task_id} with a wrong secret")
        # A good secret over a dead gateway: transport errors carry URLs and headers if anything does.
        hook = get_gateway_hook(f"leak_{gateway}")
        _ = hook.connection
    hook.__dict__["base_url"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(SmsGatewayError) as caught:
        hook.iter_statuses().__next__()
    scanner.scan_exception(caught.value, "connection refused")

    assert scanner.findings == []


def test_the_scanner_finds_a_planted_secret_in_every_form(tmp_path: Path):
    """The scan itself works: a leak in any of the forms it knows is found."""
    import base64
    from urllib.parse import quote

    secrets = distinctive_secrets()
    value = secrets["textboost_token"]
    (tmp_path / "plain.log").write_text(f"Authorization: Bearer {value}\n")
    (tmp_path / "url.log").write_text(f"GET /x?token={quote(value)}")
    (tmp_path / "b64.log").write_bytes(base64.b64encode(f"sandbox-client-id:{value}".encode()))
    (tmp_path / "cut.log").write_text("token=..." + value[-16:])
    scanner = LeakScanner(secrets, basic_auth_users=["sandbox-client-id"])
    scanner.scan_path(tmp_path)

    assert {Path(f.where).name for f in scanner.findings} == {"plain.log", "url.log", "b64.log", "cut.log"}
    assert all(f.secret == "textboost_token" for f in scanner.findings)
