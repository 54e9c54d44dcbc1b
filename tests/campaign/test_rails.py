"""The rails' own rules: periods, caps, when a budget applies and what its failure says."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from airflow_provider_sms.campaign.rails import (
    FrequencyCap,
    RailSettings,
    balance_unchecked,
    check_budget,
    parse_period,
)
from airflow_provider_sms.exceptions import SmsBudgetExceededError
from airflow_provider_sms.hooks import get_gateway_hook

log = logging.getLogger(__name__)


@pytest.mark.parametrize(
    ("value", "period"),
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        (" 90 m ", timedelta(minutes=90)),
        ("2W", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
        ("3600s", timedelta(hours=1)),
        (86_400, timedelta(days=1)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(days=3), timedelta(days=3)),
    ],
)
def test_periods(value, period):
    assert parse_period(value) == period


@pytest.mark.parametrize("value", ["7", "7 days", "d", "-1d", 0, -5, timedelta(0), None, True, "1y"])
def test_bad_periods_are_refused(value):
    with pytest.raises(ValueError):
        parse_period(value)


def test_caps():
    assert FrequencyCap.of(None) is None
    assert FrequencyCap.of((2, "7d")) == FrequencyCap(2, timedelta(days=7))
    assert FrequencyCap.of([1, 3600]) == FrequencyCap(1, timedelta(hours=1))
    for bad in [(0, "7d"), (1.5, "7d"), (True, "7d"), (2,), (2, "7d", 1), "2/7d", 2]:
        with pytest.raises(ValueError):
            FrequencyCap.of(bad)


def test_opt_outs_need_a_connection_and_max_cost_a_non_negative_number():
    with pytest.raises(ValueError, match="opt_out_conn_id"):
        RailSettings()
    with pytest.raises(ValueError, match="max_cost"):
        RailSettings(honour_opt_outs=False, max_cost=-1)


@pytest.mark.parametrize(
    ("gateway", "settings", "applies"),
    [
        ("textboost", {}, True),  # units compare with segments
        ("smstools", {}, False),  # money needs a price
        ("smstools", {"cost_per_segment": 0.07}, True),
        ("smsgateway24", {}, False),  # no balance endpoint
        ("smsgateway24", {"max_cost": 10}, True),
        ("textboost", {"check_balance": False}, False),
    ],
)
def test_when_a_budget_applies(gateway, settings, applies, sms_conn_env):
    hook = get_gateway_hook(sms_conn_env[gateway])
    assert RailSettings(honour_opt_outs=False, **settings).budget_applies(hook) is applies


def test_why_a_balance_is_not_checked(sms_conn_env):
    def why(gateway, **settings):
        return balance_unchecked(
            RailSettings(honour_opt_outs=False, **settings), get_gateway_hook(sms_conn_env[gateway])
        )

    assert "no balance endpoint" in why("smsgateway24")
    assert "set cost_per_segment" in why("smstools")
    assert why("smstools", cost_per_segment=0.1) is None
    assert why("textboost") is None
    assert why("smsgateway24", check_balance=False) is None


def test_budget_messages_say_by_how_much(sandbox, sms_conn_env):
    textboost = get_gateway_hook(sms_conn_env["textboost"])
    settings = RailSettings(honour_opt_outs=False, max_cost=100, cost_per_segment=0.25)
    assert check_budget(settings, textboost, 400, "campaign 'c'", log)["estimated_cost"] == 100
    with pytest.raises(SmsBudgetExceededError, match=r"would cost 100.25 \(401 segments x 0.25.*0.25 more"):
        check_budget(settings, textboost, 401, "campaign 'c'", log)
    sandbox.set_balance("textboost", 300)
    with pytest.raises(SmsBudgetExceededError, match=r"needs 400 .*has 300 segments left: 100 short"):
        check_budget(settings, textboost, 400, "campaign 'c'", log)
    # nothing left to send: the balance is not even asked
    before = sandbox.request_count(gateway="textboost")
    check_budget(settings, textboost, 0, "campaign 'c'", log)
    assert sandbox.request_count(gateway="textboost") == before
