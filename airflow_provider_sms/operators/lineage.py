"""OpenLineage for the provider's operators, without depending on OpenLineage.

Operators call :func:`operator_lineage` from ``get_openlineage_facets_on_complete``; it returns an
``OperatorLineage`` when the OpenLineage provider (``apache-airflow-providers-openlineage``) is
installed and None otherwise, so the provider works the same without it.

SQL tables are named as the OpenLineage naming spec asks where the connection's hook says how
(PostgreSQL: namespace ``postgres://host:port``, name ``database.schema.table``); other SQL
connections get ``<conn type>://<host>[:port]`` and the table name as written (SQLite: the file path).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow.sdk import Asset

log = logging.getLogger(__name__)

__all__ = [
    "default_outlets",
    "gateway_dataset_id",
    "ledger_asset",
    "operator_lineage",
    "sql_query_tables",
    "sql_table_dataset_id",
]


def openlineage_available() -> bool:
    """True when the OpenLineage provider can be imported."""
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
    except ImportError:
        return False
    return True


def sql_table_dataset_id(conn_id: str, table: str) -> tuple[str, str]:
    """``(namespace, name)`` of ``table`` on the Airflow SQL connection ``conn_id``."""
    from airflow_provider_sms.storage.table import get_sql_hook

    hook = get_sql_hook(conn_id)
    connection = hook.get_connection(conn_id)
    parts = table.split(".")
    info = None
    try:
        info = hook.get_openlineage_database_info(connection)
    except Exception:  # a hook whose OpenLineage support needs more than we have: fall back below
        log.debug("No OpenLineage database info for %s", conn_id, exc_info=True)
    if info is not None:
        if len(parts) == 1:
            parts.insert(0, _default_schema(hook))
        database = info.database or connection.schema
        name = ".".join(p for p in (database, *parts) if p)
        return f"{info.scheme}://{info.authority}", name
    host = connection.host or conn_id
    authority = f"{host}:{connection.port}" if connection.port else host
    return f"{connection.conn_type}://{authority}", table


def sql_query_tables(sql: str | None, conn_id: str | None) -> list[tuple[str, str]]:
    """``(conn_id, table)`` for each table ``sql`` reads, parsed by OpenLineage's SQL parser
    (empty without the OpenLineage provider or when the query cannot be parsed)."""
    if not sql or not conn_id:
        return []
    try:
        from airflow.providers.openlineage.sqlparser import SQLParser

        from airflow_provider_sms.storage.table import get_sql_hook

        dialect = get_sql_hook(conn_id).dialect_name
        meta = SQLParser(dialect="postgres" if dialect == "postgresql" else dialect).parse([sql])
    except Exception:  # lineage must never fail a task
        log.debug("Could not parse the tables of an SQL input", exc_info=True)
        return []
    return [(conn_id, table.qualified_name) for table in (meta.in_tables if meta else [])]


def gateway_dataset_id(gateway: str, base_url: str, name: str = "messages") -> tuple[str, str]:
    """``(namespace, name)`` of a gateway's message log (e.g. ``smstools://api.smsgatewayapi.com``)."""
    authority = base_url.split("://", 1)[-1].split("/", 1)[0]
    # Any userinfo (``user:password@``) is a credential, never part of a dataset's name.
    return f"{gateway}://{authority.rpartition('@')[2]}", name


def operator_lineage(
    *,
    input_tables: Iterable[tuple[str, str]] = (),
    output_tables: Iterable[tuple[str, str]] = (),
    inputs: Iterable[tuple[str, str]] = (),
    outputs: Iterable[tuple[str, str]] = (),
) -> Any:
    """An ``OperatorLineage`` with the given datasets, or None without the OpenLineage provider.

    :param input_tables: ``(sql_conn_id, table)`` pairs read by the task.
    :param output_tables: ``(sql_conn_id, table)`` pairs written by the task.
    :param inputs: other datasets read, as ``(namespace, name)`` (see :func:`gateway_dataset_id`).
    :param outputs: other datasets written, as ``(namespace, name)``.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    def datasets(tables: Iterable[tuple[str, str]], others: Iterable[tuple[str, str]]) -> list[Any]:
        ids = [sql_table_dataset_id(conn_id, table) for conn_id, table in tables]
        ids += list(others)
        unique = dict.fromkeys(ids)  # keep order, drop repeats
        return [Dataset(namespace=namespace, name=name) for namespace, name in unique]

    return OperatorLineage(inputs=datasets(input_tables, inputs), outputs=datasets(output_tables, outputs))


def _default_schema(hook: Any) -> str:
    try:
        return hook.get_openlineage_default_schema() or "public"
    except Exception:
        return "public"


def ledger_asset(ledger_conn_id: str, table: str) -> Asset:
    """The Asset that stands for a ledger or report table, so downstream DAGs can run on it."""
    return Asset(name=f"{ledger_conn_id}.{table}", uri=f"sms-table://{ledger_conn_id}/{table}")


def default_outlets(dry_run: bool, ledger_conn_id: str, ledger_table: str) -> list[Asset]:
    """The ledger table, unless nothing is recorded (a dry run)."""
    return [] if dry_run else [ledger_asset(ledger_conn_id, ledger_table)]


class LedgerOutlets:
    """Mixed into the send operator: ``partial`` gets the same outlets default as ``__init__``.
    ``partial`` fills ``outlets`` with Airflow's default (``[]``) before ``__init__`` runs, so
    without this the mapped sends would emit no event on the ledger Asset."""

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        if "outlets" not in kwargs:
            kwargs["outlets"] = default_outlets(
                kwargs.get("dry_run", False),
                kwargs.get("ledger_conn_id", "sqlite_default"),
                kwargs.get("ledger_table", "sms_messages"),
            )
        return super().partial(**kwargs)  # type: ignore[misc]
