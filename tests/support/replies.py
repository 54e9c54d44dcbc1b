"""What the replies tests share: numbers whose simulated reply is known, the operators run as a
task would run them, the tables read back."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pendulum

from airflow_provider_sms.messages import SendOutcome
from airflow_provider_sms.operators.replies import SmsRepliesOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.sandbox import replies as sandbox_replies
from airflow_provider_sms.sandbox.config import SandboxConfig
from airflow_provider_sms.storage.ledger import ACCEPTED, LedgerEntry, MessageLedger, idempotency_key
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import get_sql_hook

RATE, REPLY_SECONDS = SandboxConfig().reply_rate, SandboxConfig().reply_seconds
ALL_IN = 2 + REPLY_SECONDS  # delivery (the session sandbox's 2 s), then every simulated reply's delay
COLUMNS = ("gateway", "message_id", "conn_id", "sender", "text", "intent", "keyword", "campaign_key")


def numbers(kind: str | None, count: int, start: int = 0) -> list[str]:
    """Delivered German mobile numbers whose simulated reply is of ``kind`` (None: they never reply)."""
    found = []
    for n in range(start, start + 50_000):
        number = f"+49151{n:08d}"
        if number[-2:] in ("13", "66"):
            continue  # not delivered: no reply whatever the number says
        simulated = sandbox_replies.simulated_reply(number, RATE)
        if (simulated.kind if simulated else None) == kind:
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} numbers reply {kind}")


def context(task_id: str = "replies") -> dict:
    return {
        "ti": SimpleNamespace(dag_id="replies", task_id=task_id, try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def send(conn_id: str, sql_conn_id: str, phones: list[str], campaign_key: str) -> dict:
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        audience=[{"phone": p} for p in phones],
        message="Autumn sale today. Reply STOP to opt out",
        ledger_conn_id=sql_conn_id,
        campaign_key=campaign_key,
    ).execute(context("send"))


def read_replies(conn_id: str, sql_conn_id: str, **kwargs) -> dict:
    return SmsRepliesOperator(
        task_id="replies", sms_conn_id=conn_id, replies_conn_id=sql_conn_id, **kwargs
    ).execute(context())


def stored(sql_conn_id: str, table: str = "sms_replies") -> dict[str, dict]:
    """The replies table by sender."""
    cols = ", ".join(f'"{c}"' for c in (*COLUMNS, "matched_message_id", "reason", "received_at"))
    rows = get_sql_hook(sql_conn_id).get_records(f'SELECT {cols} FROM "{table}"')
    names = (*COLUMNS, "matched_message_id", "reason", "received_at")
    found = {row[3]: dict(zip(names, row, strict=True)) for row in rows}
    for row in found.values():
        row["received_at"] = OptOutTable.from_ts(row["received_at"])  # SQLite keeps text
    return found


def opt_out_rows(sql_conn_id: str, phones: list[str]) -> dict[str, dict]:
    table = OptOutTable(sql_conn_id)
    try:
        return table.rows(phones)
    finally:
        table.close()


def ledger_ids(sql_conn_id: str, campaign_key: str) -> dict[str, str]:
    ledger = MessageLedger(sql_conn_id)
    try:
        return {e.recipient: e.message_id for e in ledger.in_state(campaign_key, [ACCEPTED])}
    finally:
        ledger.close()


def sent(ledger: MessageLedger, campaign: str, phone: str, at: datetime, state: str = ACCEPTED) -> str:
    """A ledger row of ``campaign`` to ``phone`` that left at ``at``; returns its gateway id."""
    ledger.record(campaign, [LedgerEntry(phone, "pending", idempotency_key(campaign, phone))])
    ledger.claim(campaign, [(phone, None, None)])
    message_id = f"{campaign}-{phone}"
    ledger.mark(
        campaign, [SendOutcome(phone, state, message_id if state == ACCEPTED else None, None, None, None)]
    )
    ledger.execute(
        f'UPDATE {ledger.quoted} SET "sent_at" = {ledger.ph} WHERE "campaign_key" = {ledger.ph} '
        f'AND "recipient" = {ledger.ph}',
        [ledger.ts(at), campaign, phone],
    )
    return message_id
