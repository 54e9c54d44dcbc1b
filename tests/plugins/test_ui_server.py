"""The campaigns pages served by a real ``airflow api-server`` over the example DAGs' data (the demo's):
the numbers of every page against SQL over the ledger and report, the DAG runs each campaign is
linked to, the login every route asks for, that nothing is written, and the pages rendered by
headless Chromium inside the Airflow UI, their numbers read from the DOM and screenshots saved
(``$SMS_ARTEFACTS``, default ``artefacts/``).

The example DAGs run once per session (``example_dags_run``, a few minutes);
``SMS_EXAMPLE_DAGS_WORKDIR=.demo`` reuses a finished demo's directory instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.api_server import ApiServer, run_api_server
from tests.support.campaign_sql import expected_campaigns
from tests.support.html_figures import figures, shown

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
COST = 0.075  # example_dags/sms_campaign.py COST_PER_SEGMENT


@dataclass(frozen=True)
class Demo:
    """The example DAGs' directory: Airflow's home (metadata DB, SQLite) and the warehouse."""

    workdir: Path
    env: dict[str, str]

    @property
    def airflow_home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def warehouse(self) -> Path:
        return self.workdir / "warehouse.db"

    def query(self, database: Path) -> Callable[[str], list[tuple]]:
        def run(sql: str, params: tuple = ()) -> list[tuple]:
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                return db.execute(sql, params).fetchall()

        return run


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest) -> Demo:
    kept = os.environ.get("SMS_EXAMPLE_DAGS_WORKDIR")
    if not kept:
        example = request.getfixturevalue("example_dags_run")
        return Demo(example.workdir, example.env)
    workdir = Path(kept).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    for line in (workdir / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return Demo(workdir, env)


@pytest.fixture(scope="module")
def server(demo: Demo):
    with run_api_server(
        demo.env,
        demo.airflow_home,
        AIRFLOW__SMS__LEDGER_CONN_ID="warehouse",
        AIRFLOW__SMS__COST_PER_SEGMENT=str(COST),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def token(server: ApiServer) -> str:
    return server.token("admin")


@pytest.fixture(scope="module")
def want(demo: Demo) -> dict[str, dict]:
    return expected_campaigns(demo.query(demo.warehouse), cost_per_segment=COST)


def runs(demo: Demo) -> dict[str, str]:
    """The run id of each example DAG (each ran once)."""
    return dict(demo.query(demo.airflow_home / "airflow.db")("SELECT dag_id, run_id FROM dag_run"))


def campaign_of(demo: Demo, dag_id: str) -> str:
    (key,) = [
        k
        for (k,) in demo.query(demo.warehouse)("SELECT DISTINCT campaign_key FROM sms_messages")
        if k.startswith(f"{dag_id}.")
    ]
    return key


ROUTES = [
    ("/sms-campaigns/", {}),
    ("/sms-campaigns/api/campaigns", {}),
    ("/sms-campaigns/campaign", {"key": "x"}),
    ("/sms-campaigns/api/campaign", {"key": "x"}),
    ("/sms-campaigns/run", {"dag_id": "sms_campaign", "run_id": "x"}),
    ("/sms-campaigns/api/run", {"dag_id": "sms_campaign", "run_id": "x"}),
    ("/sms-campaigns/icon.svg", {}),
]


def test_every_route_asks_for_a_login(server: ApiServer) -> None:
    for path, params in ROUTES:
        assert server.get(path, **params).status_code == 401, path
        assert server.get(path, token="not-a-token", **params).status_code == 403, path
    viewer = server.token("viewer")
    assert server.get("/sms-campaigns/api/campaigns", token=viewer).status_code == 200
    # The UI's session cookie is a login too (how the UI's frames load the pages).
    cookie = server.get("/sms-campaigns/api/campaigns", token=None)
    assert cookie.status_code == 401
    import requests

    with_cookie = requests.get(
        f"{server.url}/sms-campaigns/api/campaigns", cookies={"_token": viewer}, timeout=120
    )
    assert with_cookie.status_code == 200


def test_the_list_filters_are_checked_alike_on_the_page_and_the_json(server: ApiServer, token: str) -> None:
    for path in ("/sms-campaigns/", "/sms-campaigns/api/campaigns"):
        assert server.get(path, token, page=0).status_code == 422, path
        assert server.get(path, token, page_size=100_000).status_code == 422, path
        assert server.get(path, token, gateway="no-such-gateway").status_code == 200, path
    for path in ("/sms-campaigns/run", "/sms-campaigns/api/run"):
        assert server.get(path, token, dag_id="sms_campaign").status_code == 422, path  # no run_id
        assert server.get(path, token, dag_id="d", run_id="r", map_index="x").status_code == 422, path


def test_the_campaigns_json_matches_the_ledger_and_report_row_for_row(
    server: ApiServer, token: str, demo: Demo, want: dict[str, dict]
) -> None:
    answer = server.get("/sms-campaigns/api/campaigns", token, page_size=200)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    got = {c["campaign_key"]: c for c in found["campaigns"]}
    # sms_campaign, sms_fanout_campaign, sms_newsletter and sms_replies_and_opt_outs' next campaign
    assert set(got) == set(want) and len(want) == 4
    for key, campaign in want.items():
        assert {k: got[key][k] for k in campaign} == campaign, key
    assert found["problems"] == []
    # Each campaign is linked to the run that sent it: through the ledger Asset's send tasks, or
    # (the newsletter) through its key naming the run.
    run_ids = runs(demo)
    links = {key: {(r["dag_id"], r["run_id"], r["task_id"]) for r in c["dag_runs"]} for key, c in got.items()}
    assert links[campaign_of(demo, "sms_campaign")] == {("sms_campaign", run_ids["sms_campaign"], "send")}
    fanout = [r for r in got[campaign_of(demo, "sms_fanout_campaign")]["dag_runs"]]
    assert {(r["task_id"], r["map_index"]) for r in fanout} == {("send_shard", i) for i in range(4)}
    assert links[campaign_of(demo, "sms_newsletter")] == {("sms_newsletter", run_ids["sms_newsletter"], None)}
    replies = campaign_of(demo, "sms_replies_and_opt_outs")
    assert links[replies] == {
        ("sms_replies_and_opt_outs", run_ids["sms_replies_and_opt_outs"], "next_campaign")
    }
    # The demo's known outcome (README): 270 delivered, 3 undelivered, 3 failed of 276.
    sent = got[campaign_of(demo, "sms_campaign")]
    assert (sent["accepted"], sent["delivered"], sent["undelivered"], sent["failed"]) == (276, 270, 3, 3)


def test_the_campaigns_page_shows_the_same_numbers(
    server: ApiServer, token: str, want: dict[str, dict]
) -> None:
    page = server.get("/sms-campaigns/", token)
    assert page.status_code == 200
    got = figures(page.text)
    assert set(got) == set(want)
    for key, campaign in want.items():
        assert {f: got[key][f] for f in shown(campaign)} == shown(campaign), key


def test_the_list_is_filtered_by_dag_and_by_gateway(server: ApiServer, token: str, demo: Demo, want) -> None:
    def keys(path: str, **params: str) -> set[str]:
        answer = server.get(path, token, page_size=200, **params)
        assert answer.status_code == 200, answer.text
        if path.endswith("/api/campaigns"):
            return {c["campaign_key"] for c in answer.json()["campaigns"]}
        return set(figures(answer.text))

    dags = ("sms_campaign", "sms_fanout_campaign", "sms_newsletter", "sms_replies_and_opt_outs")
    gateways = {c["gateway"] for c in want.values()}
    assert len(gateways) >= 2  # the filter has something to tell apart
    for path in ("/sms-campaigns/api/campaigns", "/sms-campaigns/"):
        for dag_id in dags:
            assert keys(path, dag_id=dag_id) == {campaign_of(demo, dag_id)}, (path, dag_id)
        for gateway in gateways:
            assert keys(path, gateway=gateway) == {k for k, c in want.items() if c["gateway"] == gateway}
        key = campaign_of(demo, "sms_campaign")
        other = sorted(gateways - {want[key]["gateway"]})[0]
        assert keys(path, dag_id="sms_campaign", gateway=want[key]["gateway"]) == {key}
        assert keys(path, dag_id="sms_campaign", gateway=other) == set()
    # The page's filter offers the DAGs and gateways of the campaigns, the chosen ones selected.
    page = server.get("/sms-campaigns/", token, dag_id="sms_newsletter").text
    for dag_id in dags:
        assert f'<option value="{dag_id}"' in page
    assert '<option value="sms_newsletter" selected>' in page
    for gateway in gateways:
        assert f'<option value="{gateway}"' in page
    empty = server.get("/sms-campaigns/api/campaigns", token, dag_id="sms_campaign", gateway=other).json()
    assert empty["empty"] == "No campaign matches the filters." and empty["total"] == 0


def test_a_dag_runs_tab_shows_what_the_run_sent(server: ApiServer, token: str, demo: Demo, want) -> None:
    run_ids = runs(demo)
    for dag_id in ("sms_campaign", "sms_fanout_campaign", "sms_newsletter"):
        key = campaign_of(demo, dag_id)
        answer = server.get("/sms-campaigns/api/run", token, dag_id=dag_id, run_id=run_ids[dag_id]).json()
        assert [c["campaign_key"] for c in answer["campaigns"]] == [key], dag_id
        page = server.get("/sms-campaigns/run", token, dag_id=dag_id, run_id=run_ids[dag_id]).text
        assert {f: figures(page)[key][f] for f in shown(want[key])} == shown(want[key])
    quiet = server.get(
        "/sms-campaigns/api/run",
        token,
        dag_id="sms_nightly_contact_sync",
        run_id=run_ids["sms_nightly_contact_sync"],
    ).json()
    assert quiet["campaigns"] == [] and quiet["empty"].startswith("This DAG run sent no SMS campaign")
    # A task instance's tab: the send task's campaign; another task of the run shows the run's.
    for task_id in ("send", "wait_for_delivery"):
        answer = server.get(
            "/sms-campaigns/api/run",
            token,
            dag_id="sms_campaign",
            run_id=run_ids["sms_campaign"],
            task_id=task_id,
            map_index=-1,
        ).json()
        assert [c["campaign_key"] for c in answer["campaigns"]] == [campaign_of(demo, "sms_campaign")]
    assert server.get("/sms-campaigns/api/run", token, dag_id="no_such_dag", run_id="x").status_code == 200


def test_a_campaigns_page_has_its_reasons_and_timeline(
    server: ApiServer, token: str, demo: Demo, want
) -> None:
    key = campaign_of(demo, "sms_campaign")
    answer = server.get("/sms-campaigns/api/campaign", token, key=key).json()
    assert {k: answer["campaign"][k] for k in want[key]} == want[key]
    failures = demo.query(demo.warehouse)(
        "SELECT r.status, r.raw_status, COUNT(*) FROM sms_delivery_report r JOIN sms_messages l "
        "ON l.gateway = r.gateway AND l.message_id = r.message_id WHERE l.campaign_key = ? "
        "AND r.status <> 'delivered' GROUP BY r.status, r.raw_status",
        (key,),
    )
    assert sorted((f["status"], f["raw_status"], f["messages"]) for f in answer["failure_reasons"]) == sorted(
        failures
    )
    assert sum(answer["timeline"]["delivered"]) == want[key]["delivered"]
    page = server.get("/sms-campaigns/campaign", token, key=key).text
    assert {f: figures(page)[key][f] for f in shown(want[key])} == shown(want[key])
    assert server.get("/sms-campaigns/api/campaign", token, key="no such campaign").status_code == 404


def test_the_pages_write_nothing(server: ApiServer, token: str, demo: Demo) -> None:
    def dump() -> list[str]:
        with closing(sqlite3.connect(f"file:{demo.warehouse}?mode=ro", uri=True)) as db:
            return list(db.iterdump())

    before = dump()
    key = campaign_of(demo, "sms_campaign")
    run_id = runs(demo)["sms_campaign"]
    for path, params in [
        ("/sms-campaigns/", {}),
        ("/sms-campaigns/campaign", {"key": key}),
        ("/sms-campaigns/run", {"dag_id": "sms_campaign", "run_id": run_id}),
    ]:
        assert server.get(path, token, **params).status_code == 200
    assert dump() == before


# -- in a browser ----------------------------------------------------------------------------------

FIGURES_JS = """
(() => {
  const doc = %s;
  const out = {};
  for (const el of doc.querySelectorAll('[data-campaign-key] [data-field]')) {
    const key = el.closest('[data-campaign-key]').getAttribute('data-campaign-key');
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
    (out[key] = out[key] || {})[el.getAttribute('data-field')] = own;
  }
  return out;
})()
"""
FRAME = "document.querySelector('iframe') && document.querySelector('iframe').contentDocument"


def test_the_pages_in_a_browser_inside_the_airflow_ui(
    server: ApiServer, token: str, demo: Demo, want
) -> None:
    from tests.support.browser import artefacts, browser, find_chromium

    chromium, why = find_chromium()
    if chromium is None:
        pytest.skip(why)
    folder = artefacts()
    key = campaign_of(demo, "sms_campaign")
    run_id = runs(demo)["sms_campaign"]

    async def visit() -> dict[str, dict]:
        seen = {}
        async with browser(chromium, width=1600, height=1000) as page:
            # The UI's login leaves its JWT in this cookie; the UI's frames load the pages with it.
            await page.send("Network.setCookie", name="_token", value=token, url=server.url + "/")

            await page.open(
                f"{server.url}/plugin/sms-campaigns",
                f"{FRAME}.querySelectorAll('tr[data-campaign-key]').length >= 3",
            )
            seen["campaigns"] = await page.evaluate(FIGURES_JS % f"{FRAME}")
            assert "SMS campaigns" in await page.evaluate("document.body.innerText")  # the nav entry
            await page.screenshot(folder / "campaigns.png")

            await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=1600,
                height=1250,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.open(
                f"{server.url}/plugin/sms-campaigns/sms-campaigns/campaign?key={quote(key)}",
                f"{FRAME}.querySelector('.cards[data-campaign-key]') && {FRAME}.querySelector('svg.chart.line')",
            )
            seen["campaign"] = await page.evaluate(FIGURES_JS % f"{FRAME}")
            await page.screenshot(folder / "campaign.png")

            await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=1600,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.open(
                f"{server.url}/dags/sms_campaign/runs/{quote(run_id, safe='')}/plugin/sms-campaign-run",
                f"{FRAME}.querySelector('.cards[data-campaign-key]')",
            )
            seen["run"] = await page.evaluate(FIGURES_JS % f"{FRAME}")
            await page.screenshot(folder / "dag_run_tab.png")
        return seen

    seen = asyncio.run(visit())
    for campaign_key, campaign in want.items():
        assert {f: seen["campaigns"][campaign_key][f] for f in shown(campaign)} == shown(campaign), (
            campaign_key
        )
    assert {f: seen["campaign"][key][f] for f in shown(want[key])} == shown(want[key])
    assert {f: seen["run"][key][f] for f in shown(want[key])} == shown(want[key])
    for name in ("campaigns.png", "campaign.png", "dag_run_tab.png"):
        assert (folder / name).stat().st_size > 10_000, name
    (folder / "campaigns.json").write_text(json.dumps(seen, indent=2))
