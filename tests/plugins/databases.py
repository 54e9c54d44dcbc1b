"""SQL connections for tests: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL is the machine's server on 127.0.0.1:5432 (trust auth, user postgres); tests that need
it skip, saying why, only where no server answers.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

PG_HOST = os.environ.get("SMS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SMS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SMS_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SMS_TEST_PG_DB", "test")


def _pg_admin():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, connect_timeout=3)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        _pg_admin().close()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}"
    return None


@pytest.fixture
def sqlite_conn_id(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMS_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")})
    )
    return "sms_sqlite"


@pytest.fixture
def postgres_conn_id(monkeypatch, postgres_available) -> str:
    if postgres_available:
        pytest.skip(postgres_available)
    name = f"sms_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMS_POSTGRES",
        json.dumps(
            {"conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER, "schema": name}
        ),
    )
    yield "sms_postgres"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def sql_conn_id(request) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_conn_id")
