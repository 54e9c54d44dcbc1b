"""Fixtures of the campaigns pages' tests: real campaigns sent to the sandbox and reported, and an
empty Airflow metadata database (every table of this Airflow version, in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pendulum
import pytest

from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator

# The sandbox's outcomes: numbers ending 13 are undelivered, 66 failed, the rest delivered.
AUDIENCE = [
    {"phone": "+4915110000001", "name": "Anna"},
    {"phone": "+4915110000002", "name": "Ben"},
    {"phone": "+4915110000003", "name": "Cem"},
    {"phone": "+4915110000013", "name": "Dora"},
    {"phone": "+4915110000066", "name": "Emil"},
    {"phone": "+4915110000004", "name": "Fay"},  # opted out
    {"phone": "+49 151 10000001", "name": "Anna again"},  # a duplicate: not in the ledger
    {"phone": "not a number", "name": "Gus"},
    {"phone": "12", "name": "Hal"},
]
OPTED_OUT = ["+4915110000004"]
AUTUMN = "Autumn sale: " + "all boots -20% " * 12  # two segments


def context(dag_id: str = "campaigns", run_id: str = "manual__1") -> dict:
    return {
        "ti": SimpleNamespace(dag_id=dag_id, task_id="send", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": run_id,
        "ds": "2026-11-23",
        "params": {},
    }


def send(conn_id: str, ledger_conn_id: str, key: str, message: str, audience: list[dict] = AUDIENCE) -> dict:
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message=message,
        audience=audience,
        ledger_conn_id=ledger_conn_id,
        campaign_key=key,
        suppression_list=OPTED_OUT,
        default_region="DE",
        max_reject_ratio=0.9,
    ).execute(context())


def report(conn_id: str, report_conn_id: str, campaign_key: str | None = None) -> dict:
    return SmsDeliveryReportOperator(
        task_id="report", sms_conn_id=conn_id, report_conn_id=report_conn_id, campaign_key=campaign_key
    ).execute(context())


@pytest.fixture
def campaigns(sandbox, sms_conn_env, sql_conn_id) -> dict[str, str]:
    """Three campaigns in the ledger on ``sql_conn_id``: ``spring`` (Smstools, reported account-wide),
    ``autumn`` (TextBoost, a long text, reported by its key), ``winter`` (SmsGateway24, no report).
    Returns their keys by name."""
    keys = {"spring": "shop.spring-sale.2026", "autumn": "shop.autumn/sale 2026", "winter": "shop.winter"}
    send(sms_conn_env["smstools"], sql_conn_id, keys["spring"], "Hi {{ name }}, spring sale today")
    send(sms_conn_env["textboost"], sql_conn_id, keys["autumn"], AUTUMN)
    send(sms_conn_env["smsgateway24"], sql_conn_id, keys["winter"], "Winter sale")
    sandbox.advance(5)
    report(sms_conn_env["smstools"], sql_conn_id)
    report(sms_conn_env["textboost"], sql_conn_id, campaign_key=keys["autumn"])
    return keys


@pytest.fixture(scope="session")
def metadata_session() -> Iterator:
    """A session on an empty Airflow metadata database: no DAG run links any campaign."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import_all_models()
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
