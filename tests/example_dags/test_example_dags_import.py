"""The example DAGs parse cleanly, touch no database and no network when imported, use only the
connections the demo sets, and are wired the way their docs say."""

from __future__ import annotations

import ast
import contextlib
import json
import socket
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scripts.run_example_dags import DAG_ORDER, DAGS_FOLDER, REPORT_ASSET_URI, connections

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))
CONN_ATTRIBUTES = (
    "sms_conn_id",
    "sql_conn_id",
    "ledger_conn_id",
    "report_conn_id",
    "state_conn_id",
    "replies_conn_id",
    "opt_out_conn_id",
)


class TopLevelAccess(AssertionError):
    """Raised by the guards: a DAG file reached for a database or the network while being parsed."""


def _refuse(what: str):
    def guard(*args: Any, **kwargs: Any) -> Any:
        raise TopLevelAccess(f"{what} at DAG parse time")

    return guard


@contextmanager
def no_database_or_network() -> Iterator[None]:
    """Close every way to a database, an Airflow connection or the network."""
    import psycopg2
    from airflow.sdk import BaseHook

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse("a network connection"))
        mp.setattr(socket.socket, "connect_ex", _refuse("a network connection"))
        mp.setattr(socket, "create_connection", _refuse("a network connection"))
        mp.setattr(sqlite3, "connect", _refuse("a SQLite connection"))
        mp.setattr(psycopg2, "connect", _refuse("a PostgreSQL connection"))
        mp.setattr(BaseHook, "get_connection", classmethod(_refuse("an Airflow connection lookup")))
        yield


def parse(folder: Path):
    """The folder parsed the way the dag processor parses it, with the guards on."""
    from airflow.dag_processing.dagbag import DagBag

    with no_database_or_network():
        return DagBag(dag_folder=str(folder))


@pytest.fixture(scope="module")
def dagbag():
    return parse(DAGS_FOLDER)


def test_every_example_dag_imports_without_errors_or_top_level_access(dagbag) -> None:
    # A guard that fired shows up here as an import error naming it.
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == sorted(DAG_ORDER)


@pytest.mark.parametrize(
    "top_level",
    [
        "BaseHook.get_connection('warehouse')",
        "sqlite3.connect('warehouse.db')",
        "socket.create_connection(('127.0.0.1', 8025))",
    ],
)
def test_the_guards_catch_a_dag_file_that_reaches_out_at_import(tmp_path: Path, top_level: str) -> None:
    (tmp_path / "bad_dag.py").write_text(
        "import socket, sqlite3\nimport pendulum\nfrom airflow.sdk import BaseHook, dag\n"
        f"{top_level}\n"
        "@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1))\ndef bad_dag(): pass\nbad_dag()\n"
    )
    errors = parse(tmp_path).import_errors
    assert len(errors) == 1
    assert "at DAG parse time" in next(iter(errors.values()))


def test_one_dag_per_file_named_after_its_dag_id(dagbag) -> None:
    assert sorted(p.stem for p in DAG_FILES) == sorted(DAG_ORDER)
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_airflow_only_through_the_task_sdk(path: Path) -> None:
    tree = ast.parse(path.read_text())
    modules = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    modules += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    airflow_modules = {m for m in modules if m == "airflow" or (m or "").startswith("airflow.")}
    assert airflow_modules <= {"airflow.sdk", "airflow.sdk.exceptions"}, (
        f"{path.name} imports {sorted(airflow_modules)}"
    )


def test_every_dag_is_documented_and_tagged(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no doc"
        assert {"sms", "example"} <= set(dag.tags), dag_id


def test_dags_use_only_the_connections_the_demo_sets(dagbag) -> None:
    available = set(connections("http://sandbox", "warehouse.db"))
    used: dict[str, set[str]] = {}
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            # Mapped operators keep their arguments in partial_kwargs.
            values = getattr(task, "partial_kwargs", None) or vars(task)
            for name in CONN_ATTRIBUTES:
                if values.get(name):
                    used.setdefault(dag_id, set()).add(values[name])
    assert set().union(*used.values()) <= available, used
    assert used["sms_nightly_contact_sync"] == available  # all three gateways and the warehouse


def test_delivery_summary_runs_on_the_asset_the_report_tasks_update(dagbag) -> None:
    summary = dagbag.dags["sms_delivery_summary"]
    condition = summary.timetable.asset_condition  # one Asset, or an AssetAll/AssetAny of several
    scheduled_on = {asset.uri for asset in getattr(condition, "objects", [condition])}
    assert scheduled_on == {REPORT_ASSET_URI}
    for dag_id in ("sms_campaign", "sms_fanout_campaign"):
        report = dagbag.dags[dag_id].get_task("delivery_report")
        assert {outlet.uri for outlet in report.outlets} == {REPORT_ASSET_URI}, dag_id


def test_campaign_sends_only_after_the_dry_run_and_waits_for_delivery_before_the_report(dagbag) -> None:
    dag = dagbag.dags["sms_campaign"]
    assert dag.get_task("send").upstream_task_ids == {"check_budget"}
    assert dag.get_task("check_budget").upstream_task_ids == {"dry_run_summary"}
    assert dag.get_task("wait_for_delivery").upstream_task_ids == {"send"}
    assert dag.get_task("delivery_report").upstream_task_ids == {"wait_for_delivery"}
    assert dag.get_task("dry_run_summary").dry_run is True
    assert dag.get_task("wait_for_delivery").deferrable is True


def test_fanout_maps_the_send_over_shards(dagbag) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["sms_fanout_campaign"]
    send = dag.get_task("send_shard")
    assert isinstance(send, MappedOperator)
    assert send.upstream_task_ids == {"plan_shards"}
    assert dag.get_task("wait_for_delivery").upstream_task_ids == {"check_shards"}
    assert dag.params["shards"] == 4


def test_replies_are_read_on_every_gateway_before_the_next_campaign_sends(dagbag) -> None:
    dag = dagbag.dags["sms_replies_and_opt_outs"]
    reads = {f"read_replies_{g}" for g in ("smstools", "smsgateway24", "textboost")}
    assert dag.get_task("next_campaign").upstream_task_ids == reads
    assert dag.get_task("replies_for_a_person").upstream_task_ids == reads
    for task_id in reads:
        outlets = {outlet.uri for outlet in dag.get_task(task_id).outlets}
        assert outlets == {"sms-table://warehouse/sms_replies", "sms-table://warehouse/sms_opt_outs"}
    send = dag.get_task("next_campaign")
    assert (send.honour_opt_outs, send.opt_out_table) == (True, "sms_opt_outs")
    assert dag.get_task("read_replies_smstools").opt_out_table == send.opt_out_table


def _dry_run_summary(would_send: int, cost_per_message: float = 0.075) -> dict[str, Any]:
    return {
        "would_send": would_send,
        "estimated_cost": round(would_send * cost_per_message, 4),
        "segments": would_send,
        "rejected": 0,
        "suppressed": 0,
        "duplicates": 0,
        "sample": [{"to": "+4915110000000", "body": "Hi", "segments": 1}] if would_send else [],
    }


@pytest.mark.parametrize("would_send", [0, 276, 1847, 4616, 100_000])
def test_the_campaign_budget_grows_with_the_audience(dagbag, would_send: int) -> None:
    check_budget = dagbag.dags["sms_campaign"].get_task("check_budget").python_callable
    params = {"max_cost_per_message": 0.10, "max_cost": None}
    assert check_budget(_dry_run_summary(would_send), params=params)["would_send"] == would_send


def test_a_campaign_over_budget_fails_at_once_without_retries(dagbag) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    check_budget = dagbag.dags["sms_campaign"].get_task("check_budget").python_callable
    with pytest.raises(AirflowFailException, match="exceeds the budget"):
        check_budget(_dry_run_summary(1847, 0.2), params={"max_cost_per_message": 0.10, "max_cost": None})
    with pytest.raises(AirflowFailException, match=r"exceeds the budget 100\.0"):  # the optional cap
        check_budget(_dry_run_summary(1847), params={"max_cost_per_message": 0.10, "max_cost": 100.0})
    assert dagbag.dags["sms_campaign"].params["max_cost"] is None


@pytest.mark.parametrize("customers", [300, 2000])
def test_the_contact_sync_leaves_out_every_opted_out_number_whoever_shares_it(
    dagbag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, customers: int
) -> None:
    """Customers 290 and 291 share a number and only 291 opted out: the number stays out."""
    from airflow_provider_sms.messages import normalize_phone
    from scripts.seed_warehouse import expected, generate, seed

    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
    )
    seed("warehouse", customers)
    consenting = dagbag.dags["sms_nightly_contact_sync"].get_task("consenting_customers").python_callable
    rows = consenting()
    exp = expected(generate(customers))
    numbers = set()
    for row in rows:
        with contextlib.suppress(ValueError):  # an invalid number: the sync rejects it
            numbers.add(normalize_phone(row["phone"], "DE"))
    assert numbers == exp.subscribers
    assert not numbers & exp.opted_out
    assert "+4915110000289" in exp.opted_out  # customer 291's number, customer 290's too


def test_every_planned_check_is_shown_when_a_dag_fails_or_is_not_selected(tmp_path: Path) -> None:
    from scripts.run_example_dags import DagResult, ExampleRun, planned_checks

    class FakeSandbox:
        url = "http://127.0.0.1:1"

        def messages(self, gateway: str | None = None) -> list[dict[str, Any]]:
            return []

        def stats(self) -> dict[str, Any]:
            empty = {"total": 0, "by_normalized_status": {}}
            return {
                "messages": {"by_gateway": dict.fromkeys(("smstools", "smsgateway24", "textboost"), empty)}
            }

    example = ExampleRun(tmp_path, FakeSandbox(), echo=lambda line: None)  # type: ignore[arg-type]
    log = tmp_path / "sms_campaign.log"
    log.write_text("boom\n")
    example.results.append(DagResult("sms_campaign", False, 1.0, log))
    checks = example.verify(["sms_campaign"])
    planned = [name for names in planned_checks().values() for name in names]
    assert sorted(c.name for c in checks) == sorted(planned)
    by_name = {c.name: c for c in checks}
    assert all(by_name[n].status == "failed" for n in planned_checks()["sms_campaign"])
    assert all(by_name[n].status == "skipped" for n in planned_checks()["sms_newsletter"])
    assert "not selected" in by_name[planned_checks()["sms_newsletter"][0]].detail
    assert all(by_name[n].status != "skipped" for n in planned_checks()[""])  # checks over all DAGs ran
    report = example.report()
    tally = Counter(c.status for c in checks)
    assert tally["skipped"] == len(planned) - len(planned_checks()["sms_campaign"]) - len(
        planned_checks()[""]
    )
    assert (
        f"Checks: {tally['passed']} of {len(planned)} passed, {tally['failed']} failed, {tally['skipped']} skipped"
        in report
    )
    shown = [line.split()[0] for line in report.splitlines() if line.startswith(("  FAILED ", "  SKIPPED "))]
    assert shown.count("FAILED") == tally["failed"] and shown.count("SKIPPED") == tally["skipped"]
