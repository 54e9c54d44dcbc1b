"""The bulk send's outlets: the ledger Asset when it records something, whether the operator is built
directly or mapped with ``.partial(...).expand(...)``; nothing for a dry run."""

from __future__ import annotations

from airflow_provider_sms.operators.send import SmsBulkSendOperator, ledger_asset

COMMON = {
    "sms_conn_id": "smstools_default",
    "message": "Hi",
    "sql": "SELECT phone FROM c",
    "sql_conn_id": "w",
}
LEDGER = ledger_asset("warehouse", "sms_messages")


def test_a_send_emits_on_the_ledger_asset() -> None:
    op = SmsBulkSendOperator(task_id="send", ledger_conn_id="warehouse", **COMMON)
    assert op.outlets == [LEDGER]


def test_a_dry_run_emits_nothing() -> None:
    op = SmsBulkSendOperator(task_id="dry", ledger_conn_id="warehouse", dry_run=True, **COMMON)
    assert op.outlets == []


def test_mapped_sends_emit_on_the_ledger_asset_at_parse_time_and_once_unmapped() -> None:
    mapped = SmsBulkSendOperator.partial(task_id="shard", ledger_conn_id="warehouse", shard_count=2, **COMMON)
    mapped = mapped.expand(shard_index=[0, 1])
    assert mapped.outlets == [LEDGER]  # what the serialized DAG (and so the scheduler) knows
    assert mapped.unmap({"shard_index": 1}).outlets == [LEDGER]  # what the running task reports


def test_mapped_dry_runs_and_explicit_outlets_are_kept() -> None:
    dry = SmsBulkSendOperator.partial(task_id="dry", dry_run=True, **COMMON).expand(shard_index=[0])
    assert dry.outlets == []
    other = ledger_asset("dwh", "other")
    explicit = SmsBulkSendOperator.partial(task_id="x", outlets=[other], **COMMON).expand(shard_index=[0])
    assert explicit.outlets == [other]
