"""The campaigns pages' data (what /api/campaigns answers and the HTML shows) against real campaigns
sent to the sandbox and reported, compared row for row with SQL of the test's own, on SQLite and
PostgreSQL; and what the pages say when there is nothing, or something cannot be read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_sms.messages import count_segments
from airflow_provider_sms.plugins import pages, views
from airflow_provider_sms.plugins.pages import Access, Settings
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.table import SqlTable
from tests.plugins.conftest import AUTUMN, report, send
from tests.support.campaign_sql import expected_campaigns, started
from tests.support.html_figures import figures, shown

EVERY = Access(every_dag=True, readable=lambda dags: dags)
COST = 0.05
LINKS = views.Links("/sms-campaigns", "/")


def settings(conn_id: str, **kwargs) -> Settings:
    values = {"ledger_table": "sms_messages", "report_table": "sms_delivery_report", "cost_per_segment": COST}
    return Settings(ledger_conn_id=conn_id, **{**values, **kwargs})


def sql(conn_id: str):
    def query(text: str) -> list[tuple]:
        table = SqlTable(conn_id, "sms_messages")
        try:
            return table.query(text)
        finally:
            table.close()

    return query


def without_runs(campaign: dict) -> dict:
    return {k: v for k, v in campaign.items() if k not in ("dag_runs", "started")}


def test_the_campaigns_json_matches_the_ledger_and_report_row_for_row(
    campaigns, sql_conn_id, metadata_session
):
    found = pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id)).as_dict()

    want = expected_campaigns(sql(sql_conn_id), cost_per_segment=COST)
    got = {c["campaign_key"]: c for c in found["campaigns"]}
    assert set(got) == set(want) == set(campaigns.values())
    for key in want:
        assert without_runs(got[key]) == want[key], key
    assert found["problems"] == [] and found["total"] == 3
    # What the sandbox decides (13 undelivered, 66 failed), so the SQL above is not just mirrored.
    spring, autumn, winter = (got[campaigns[n]] for n in ("spring", "autumn", "winter"))
    assert (spring["recipients"], spring["accepted"], spring["rejected"], spring["suppressed"]) == (
        8,
        5,
        2,
        1,
    )
    assert (spring["delivered"], spring["undelivered"], spring["failed"], spring["pending"]) == (3, 1, 1, 0)
    assert (
        spring["suppressed_reasons"] == {"suppression list": 1}
        and sum(spring["rejected_reasons"].values()) == 2
    )
    assert spring["delivery_rate"] == 0.6 and spring["estimated_cost"] == round(5 * COST, 4)
    assert autumn["segments"] == 5 * count_segments(AUTUMN).segments == 10  # a two-segment text
    assert (autumn["delivered"], autumn["pending"]) == (3, 0)
    assert (winter["delivered"], winter["pending"], winter["delivery_rate"]) == (0, 5, None)  # no report yet
    # Newest first: by the first ledger row's time.
    first = started(sql(sql_conn_id))
    assert [c["campaign_key"] for c in found["campaigns"]] == sorted(
        first, key=lambda k: first[k], reverse=True
    )


def test_the_campaigns_page_shows_the_same_numbers(campaigns, sql_conn_id, metadata_session):
    listing = pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id))
    html = views.render_listing(listing, LINKS, "", "")

    want = expected_campaigns(sql(sql_conn_id), cost_per_segment=COST)
    got = figures(html)
    assert set(got) == set(want)
    for key, campaign in want.items():
        assert {f: got[key][f] for f in shown(campaign)} == shown(campaign), key
        assert got[key]["gateway"] == campaign["gateway"]
    assert "Delivery rate per day and gateway" in html
    # Nothing to fetch: no script, no stylesheet or image from elsewhere.
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_the_daily_chart_shows_delivered_over_accepted_per_start_day_and_gateway(
    campaigns, sql_conn_id, metadata_session
):
    # The autumn campaign started a day earlier (a fixed date): two days on the chart.
    table = SqlTable(sql_conn_id, "sms_messages")
    try:
        table.execute(
            f"UPDATE sms_messages SET created_at = {table.ph} WHERE campaign_key = {table.ph}",
            [table.ts(datetime(2026, 11, 22, 23, 30, tzinfo=UTC)), campaigns["autumn"]],
        )
    finally:
        table.close()
    html = views.render_listing(
        pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id)), LINKS, "", ""
    )

    want = expected_campaigns(sql(sql_conn_id), cost_per_segment=COST)
    cells: dict[tuple[str, str], list[int]] = {}
    for key, first in started(sql(sql_conn_id)).items():
        if want[key]["delivery_rate"] is None:  # no report yet: no bar, not a zero
            continue
        day = SqlTable.from_ts(first).astimezone(UTC).strftime("%Y-%m-%d")
        cell = cells.setdefault((want[key]["gateway"], day), [0, 0])
        cell[0] += want[key]["delivered"]
        cell[1] += want[key]["accepted"]
    chart = html.split("Delivery rate per day and gateway</h2>", 1)[1]
    bars = re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", chart)
    assert sorted(bars) == sorted(f"{gw}, {day}: {100 * d / a:.1f}%" for (gw, day), (d, a) in cells.items())
    assert ("textboost", "2026-11-22") in cells and len({day for _, day in cells}) == 2
    assert not any(bar.startswith("smsgateway24,") for bar in bars)


def test_started_is_utc_whatever_the_postgresql_sessions_time_zone(
    sandbox, sms_conn_env, postgres_conn_id, metadata_session, monkeypatch
):
    # libpq sets each new session's TimeZone from PGTZ: the page's connection reads in +05:30.
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")
    send(sms_conn_env["smstools"], postgres_conn_id, "east", "Hello")
    sandbox.advance(5)
    report(sms_conn_env["smstools"], postgres_conn_id)
    table = SqlTable(postgres_conn_id, "sms_messages")
    try:
        table.execute("UPDATE sms_messages SET created_at = '2026-11-22 23:30:00+00'")
    finally:
        table.close()
    found = pages.listing(metadata_session, EVERY, settings=settings(postgres_conn_id))
    (row,) = found.rows
    assert row.campaign.started == datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert row.campaign.started.utcoffset() == timedelta(0)
    html = views.render_listing(found, LINKS, "", "")
    assert '<td data-field="started" class="n">2026-11-22<br>23:30:00</td>' in html
    assert "smstools, 2026-11-22: " in html  # the daily chart's UTC day, not Kolkata's 23 November


def test_a_campaigns_page_has_its_reasons_and_its_delivery_over_time(
    campaigns, sql_conn_id, metadata_session
):
    key = campaigns["spring"]
    detail = pages.detail(metadata_session, EVERY, key, settings=settings(sql_conn_id))
    data = detail.as_dict()

    want = expected_campaigns(sql(sql_conn_id), cost_per_segment=COST)[key]
    assert without_runs(data["campaign"]) == want
    failures = sql(sql_conn_id)(
        "SELECT status, raw_status, COUNT(*) FROM sms_delivery_report WHERE status <> 'delivered' "
        f"AND message_id IN (SELECT message_id FROM sms_messages WHERE campaign_key = '{key}') "
        "GROUP BY status, raw_status"
    )
    assert sorted((f["status"], f["raw_status"], f["messages"]) for f in data["failure_reasons"]) == sorted(
        (s, r, int(n)) for s, r, n in failures
    )
    timeline = data["timeline"]
    assert sum(timeline["accepted"]) == want["accepted"]
    assert sum(timeline["delivered"]) == want["delivered"]
    assert sum(timeline["not_delivered"]) == want["undelivered"] + want["failed"]
    html = views.render_detail(detail, LINKS)
    got = figures(html)[key]
    assert {f: got[f] for f in shown(want)} == shown(want)
    assert "Top failure reasons" in html and "suppression list" in html and "<svg" in html
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_the_campaigns_are_filtered_by_gateway_and_paged(campaigns, sql_conn_id, metadata_session):
    s = settings(sql_conn_id)
    smstools = pages.listing(metadata_session, EVERY, settings=s, gateway="smstools").as_dict()
    assert [c["campaign_key"] for c in smstools["campaigns"]] == [campaigns["spring"]]

    everything = [
        c["campaign_key"] for c in pages.listing(metadata_session, EVERY, settings=s).as_dict()["campaigns"]
    ]
    first = pages.listing(metadata_session, EVERY, settings=s, page_size=2).as_dict()
    second = pages.listing(metadata_session, EVERY, settings=s, page_size=2, page=2).as_dict()
    assert [c["campaign_key"] for c in first["campaigns"] + second["campaigns"]] == everything
    assert first["total"] == second["total"] == 3

    none = pages.listing(metadata_session, EVERY, settings=s, dag_id="no_such_dag")
    assert none.rows == [] and none.empty == "No campaign matches the filters."


def test_campaigns_no_dag_run_claims_are_shown_only_to_who_may_read_every_dag(
    campaigns, sql_conn_id, metadata_session
):
    someone = Access(every_dag=False, readable=lambda dags: dags)
    found = pages.listing(metadata_session, someone, settings=settings(sql_conn_id))
    assert found.rows == []
    assert "belong to DAGs you cannot read" in found.empty
    with pytest.raises(pages.NotVisible):
        pages.detail(metadata_session, someone, campaigns["spring"], settings=settings(sql_conn_id))


def test_before_any_campaign_the_page_says_so(sql_conn_id, metadata_session):
    found = pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id))
    assert found.rows == [] and found.problems == []
    assert found.empty.startswith("No campaign has run yet: the ledger (table 'sms_messages'")
    assert "does not exist" in found.empty

    ledger = MessageLedger(sql_conn_id)
    try:
        ledger.ensure_table()
    finally:
        ledger.close()
    found = pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id))
    assert found.empty.endswith("has no rows.")
    html = views.render_listing(found, LINKS, "", "")
    assert "No campaign has run yet" in html


def test_without_a_report_table_delivery_is_unknown_not_zero(
    sandbox, sms_conn_env, sql_conn_id, metadata_session
):
    send(sms_conn_env["smstools"], sql_conn_id, "lonely", "Hello")
    found = pages.listing(metadata_session, EVERY, settings=settings(sql_conn_id))
    (row,) = found.as_dict()["campaigns"]
    assert (row["accepted"], row["delivered"], row["pending"], row["delivery_rate"]) == (5, None, None, None)
    (problem,) = found.problems
    assert problem.kind == "notice" and problem.text.startswith("No delivery report yet")
    html = views.render_listing(found, LINKS, "", "")
    assert figures(html)["lonely"]["delivered"] == "\u2013"


def test_a_report_table_that_cannot_be_read_fails_visibly_and_keeps_the_ledgers_numbers(
    sandbox, sms_conn_env, sql_conn_id, metadata_session
):
    send(sms_conn_env["smstools"], sql_conn_id, "broken", "Hello")
    table = SqlTable(sql_conn_id, "not_a_report")
    try:
        table.execute("CREATE TABLE not_a_report (x INTEGER)")
    finally:
        table.close()
    found = pages.listing(
        metadata_session, EVERY, settings=settings(sql_conn_id, report_table="not_a_report")
    )
    (row,) = found.as_dict()["campaigns"]
    assert (row["recipients"], row["accepted"], row["delivered"]) == (8, 5, None)
    (problem,) = found.problems
    assert problem.kind == "failed"
    assert (
        problem.text.startswith("The delivery report (table 'not_a_report'")
        and "cannot be read" in problem.text
    )
    assert 'data-problem="failed"' in views.render_listing(found, LINKS, "", "")


def test_an_undefined_ledger_connection_fails_visibly(metadata_session):
    found = pages.listing(metadata_session, EVERY, settings=settings("no_such_connection"))
    (problem,) = found.problems
    assert problem.kind == "failed"
    assert problem.text.startswith(
        "The ledger connection 'no_such_connection' ([sms] ledger_conn_id) cannot be used"
    )


def test_the_ledger_is_read_through_a_read_only_connection(campaigns, sql_conn_id):
    from airflow_provider_sms.storage.campaigns import CampaignStore

    store = CampaignStore(sql_conn_id, "sms_messages", "sms_delivery_report")
    try:
        assert len(store.campaigns()) == 3
        with pytest.raises(Exception, match=r"(?i)read.?only"):
            store.execute("DELETE FROM sms_messages")
    finally:
        store.close()
    assert sql(sql_conn_id)("SELECT COUNT(*) FROM sms_messages")[0][0] == 24


def test_a_campaign_key_is_text_on_the_pages_never_markup(
    sandbox, sms_conn_env, sqlite_conn_id, metadata_session
):
    key = '<img src=x onerror="alert(1)">&'
    send(sms_conn_env["smstools"], sqlite_conn_id, key, "Hello")
    s = settings(sqlite_conn_id)
    listing = pages.listing(metadata_session, EVERY, settings=s)
    detail = pages.detail(metadata_session, EVERY, key, settings=s)
    for html in (views.render_listing(listing, LINKS, "", ""), views.render_detail(detail, LINKS)):
        assert "<img src=x" not in html
        assert (
            "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;" in html
            or "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in html
        )
    assert figures(views.render_listing(listing, LINKS, "", ""))[key]["accepted"] == "5"
