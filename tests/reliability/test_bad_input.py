"""Property-based tests on bad input: every generated input ends in a clear error or a reject row,
never a crash and never a silent drop.

"Clear error" means a ``ValueError``/``TypeError``/``SmsGatewayError`` raised by the provider's own
code with a message (not one escaping from pandas, Jinja or phonenumbers); "no silent drop" means the
operator's counts add up to the input, and with a real send the ledger and the sandbox agree.

Cases per property: ``--examples N`` or ``SMS_RELIABILITY_EXAMPLES`` (the sends to the sandbox run a
fifth of that). The soak runs 2,000 per property, over 10,000 cases in all.
"""

from __future__ import annotations

import math
import re
import traceback
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pendulum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sms.campaign.templates import MessageTemplate, MessageTemplateError
from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.messages import InvalidPhoneNumberError, count_segments, normalize_phone
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import STATES, MessageLedger

from .helpers import set_connection, task_context

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = set("^{}\\[~]|€\f")


def properties(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


_OUTCOMES: dict[str, Counter] = {}
_CURRENT: list[str] = ["?"]


def event(outcome: str) -> None:
    """Count how a generated case ended, per property (printed at the end of the session)."""
    _OUTCOMES.setdefault(_CURRENT[0], Counter())[outcome] += 1


@pytest.fixture(autouse=True)
def _outcomes_of_this_test(request, property_outcomes):
    _CURRENT[0] = request.node.name
    yield
    if request.node.name in _OUTCOMES:
        property_outcomes[request.node.name] = _OUTCOMES.pop(request.node.name)


def assert_clear(exc: BaseException) -> None:
    """A clear error: an expected type, raised by the provider's code, with a message."""
    event(f"clear error: {type(exc).__name__}")
    assert isinstance(exc, ValueError | TypeError | SmsGatewayError), f"crash: {exc!r}"
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames and "airflow_provider_sms" in frames[-1].filename, (
        f"{type(exc).__name__} escaped from {frames[-1].filename if frames else '?'}: {exc}"
    )
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# ------------------------------------------------------------------------------------------- strategies
phone_like = st.one_of(
    st.from_regex(r"\A[+0]{0,2}[0-9 ()\-./]{0,24}\Z"),
    st.builds(lambda n: f"+49151{n:08d}", st.integers(0, 99_999_999)),
    st.builds(lambda n: f"0151 {n:08d}", st.integers(0, 99_999_999)),
    st.builds(lambda n: f"00316{n:08d}", st.integers(0, 99_999_999)),
)
any_phone = st.one_of(
    phone_like,
    st.text(max_size=40),
    st.integers(min_value=-(10**16), max_value=10**17),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.binary(max_size=20),
    st.dates(),
)
regions = st.sampled_from([None, "DE", "NL", "US", "GB", "de", "XX", "ZZ", "001", ""])
cell = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(timezone.utc))),
    st.dates(),
    st.timedeltas(max_value=timedelta(days=10_000), min_value=timedelta(days=-10_000)),
)
template_pieces = st.sampled_from(
    [
        "Hi ",
        "{{ first_name }}",
        "{{ first_name | upper }}",
        "{{ first_name | nosuchfilter }}",
        "{{ missing_column }}",
        "{{ 1 / 0 }}",
        "{{ first_name.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{% if first_name %}yes{% else %}no{% endif %}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
        "{{ ds }} {{ campaign_key }}",
        "{{",
        "}}",
        "{%",
        "{# comment #}",
        "😀 ",
        "€[]{}",
        "\n",
        "   ",
    ]
)
templates = st.one_of(st.lists(template_pieces, min_size=0, max_size=6).map("".join), st.text(max_size=60))


# ------------------------------------------------------------------------------------------- pure functions
def test_any_phone_value_normalises_to_e164_or_is_rejected_with_a_reason(examples):
    @properties(examples)
    @given(raw=any_phone, region=regions)
    def check(raw, region):
        try:
            number = normalize_phone(raw, region)
        except InvalidPhoneNumberError as exc:
            assert exc.reason.strip()
            event("rejected with a reason")
            return
        except Exception as exc:
            assert_clear(exc)
            return
        assert normalize_phone(number) == number  # E.164 is a fixed point
        event("normalised")
        assert E164.match(number), number

    check()


def test_a_number_longer_than_e164_allows_is_rejected():
    # phonenumbers' metadata calls some German pager numbers (+49 168..., 16 digits) valid.
    with pytest.raises(InvalidPhoneNumberError):
        normalize_phone(4916800000000000.0)
    with pytest.raises(InvalidPhoneNumberError, match="at most 15 digits"):
        normalize_phone("+49 168 0000 0000 000")


def test_any_template_compiles_and_renders_or_fails_clearly(examples):
    @properties(examples)
    @given(source=templates, first_name=cell)
    def check(source, first_name):
        try:
            template = MessageTemplate(source, {"campaign_key": "c", "ds": "2026-11-23"})
            template.check_columns(["phone", "first_name"])
            body = template.render({"phone": "+4915112345678", "first_name": first_name})
        except MessageTemplateError as exc:
            assert str(exc).strip()
            event("clear error: MessageTemplateError")
            return
        except Exception as exc:
            assert_clear(exc)
            return
        event("rendered")
        assert isinstance(body, str)
        assert "<class" not in body or "__class__" not in source  # the sandbox hides internals

    check()


def test_segment_count_of_any_text_matches_the_gsm_and_ucs2_rules(examples):
    @properties(examples)
    @given(
        text=st.one_of(
            st.text(max_size=2_000),
            st.text(alphabet=sorted(GSM_BASIC | GSM_EXTENSION), max_size=2_000),
            st.builds(
                lambda piece, times: piece * times, st.text(min_size=1, max_size=12), st.integers(1, 200)
            ),
        )
    )
    def check(text):
        counted = count_segments(text)
        if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
            units = len(text) + sum(ch in GSM_EXTENSION for ch in text)
            single, multi, encoding = 160, 153, "GSM-7"
        else:
            units = len(text.encode("utf-16-le")) // 2
            single, multi, encoding = 70, 67, "UCS-2"
        assert counted.encoding == encoding
        assert counted.units == units
        assert counted.segments == (1 if units <= single else math.ceil(units / multi))
        event(f"{encoding}, {'one segment' if counted.segments == 1 else 'several segments'}")

    check()


def test_send_window_strings_are_accepted_or_refused_clearly(examples):
    window_part = st.one_of(
        st.from_regex(r"\A\d{1,2}:\d{1,2}\Z"), st.text(max_size=8), st.integers(), st.none()
    )
    valid_time = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))

    @properties(examples)
    @given(
        window=st.one_of(
            st.tuples(valid_time, valid_time),
            st.tuples(window_part, window_part),
            st.lists(window_part, max_size=3),
            st.text(),
        )
    )
    def check(window):
        try:
            SmsBulkSendOperator(
                task_id="send",
                sms_conn_id="unused",
                message="Hi",
                audience=[{"phone": "1"}],
                send_window=window,
            )
        except Exception as exc:
            assert_clear(exc)
        else:
            event("accepted")

    check()


# ------------------------------------------------------------------------------------------- the operator
def audiences(max_rows: int = 12):
    """DataFrames with the phone column present, misnamed or missing, and cells of any type."""
    valid_phone = st.builds(lambda n: f"+49151{n:08d}", st.integers(0, 99_999_999))
    row = st.fixed_dictionaries(
        {"phone": st.one_of(valid_phone, valid_phone, any_phone, phone_like)},
        optional={
            "first_name": cell,
            "unsubscribed": st.one_of(st.sampled_from([0, 1, None, "yes", "no", "", "true", 0.0]), cell),
            "when": cell,
            "Phone": any_phone,
        },
    )
    return st.tuples(
        st.lists(row, min_size=1, max_size=max_rows),
        st.sampled_from(["phone", "phone", "phone", "Phone", "mobile"]),
    )


def _operator(
    conn_id: str, ledger_conn_id: str, rows: list[dict], phone_column: str, template: str, **kwargs
):
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message=template,
        audience=pd.DataFrame(rows),
        phone_column=phone_column,
        ledger_conn_id=ledger_conn_id,
        campaign_key=f"bad-input-{uuid.uuid4().hex[:12]}",
        max_reject_ratio=1.0,
        **kwargs,
    )


def _accounted(summary: dict, rows: int, dry_run: bool = False) -> None:
    parts = ["accepted", "rejected", "suppressed", "duplicates", "ambiguous"] + (
        ["would_send"] if dry_run else []
    )
    assert summary["input"] == rows, summary
    assert sum(summary[k] for k in parts) == rows, summary


def test_any_audience_in_a_dry_run_is_fully_accounted_for_or_refused_clearly(
    examples, sandbox, monkeypatch, sqlite_conn_id
):
    conn_id = set_connection(monkeypatch, "bad_input_smstools", "smstools", sandbox.url)

    @properties(examples)
    @given(audience=audiences(), template=st.sampled_from(["Hi {{ first_name }}", "On {{ when }}", "Sale!"]))
    def check(audience, template):
        rows, phone_column = audience
        try:
            summary = _operator(conn_id, sqlite_conn_id, rows, phone_column, template, dry_run=True).execute(
                task_context()
            )
        except Exception as exc:
            assert_clear(exc)
            return
        _accounted(summary, len(rows), dry_run=True)
        event("completed, every row accounted for")

    check()
    assert sandbox.request_count() == 0  # a dry run sends nothing


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24", "textboost"])
def test_any_audience_sent_for_real_ends_in_the_ledger_and_at_the_gateway_consistently(
    gateway, examples, sandbox, monkeypatch, sqlite_conn_id
):
    conn_id = set_connection(monkeypatch, f"bad_input_{gateway}", gateway, sandbox.url)

    @properties(max(10, examples // 5))
    @given(
        audience=audiences(8),
        template=st.sampled_from(["Hi {{ first_name }}", "On {{ when }}", "Sale!", "{{ first_name }}"]),
    )
    def check(audience, template):
        rows, phone_column = audience
        sandbox.reset()
        op = _operator(conn_id, sqlite_conn_id, rows, phone_column, template)
        try:
            summary = op.execute(task_context())
        except Exception as exc:
            assert_clear(exc)
            return
        _accounted(summary, len(rows))
        event(f"completed: {'some' if summary['accepted'] else 'none'} accepted")
        ledger = MessageLedger(sqlite_conn_id)
        try:
            entries = ledger.in_state(summary["campaign_key"], STATES)
        finally:
            ledger.close()
        assert len(entries) == len(rows) - summary["duplicates"]
        assert all(e.error for e in entries if e.state == "rejected"), "a reject row without its reason"
        accepted = {e.recipient for e in entries if e.state == "accepted"}
        at_gateway = [m["recipient"] for m in sandbox.messages(gateway=gateway)]
        assert sorted(at_gateway) == sorted(accepted)

    check()


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24", "textboost"])
def test_very_long_and_non_gsm_bodies_are_sent_or_rejected_with_a_reason(
    gateway, examples, sandbox, monkeypatch, sqlite_conn_id
):
    conn_id = set_connection(monkeypatch, f"long_body_{gateway}", gateway, sandbox.url)
    alphabet = st.one_of(
        st.sampled_from(sorted(GSM_BASIC | GSM_EXTENSION)),
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
        st.sampled_from(["😀", "\U0001f1e9", "中", "ß", "€", "\u200d", "\ufeff"]),
    )

    long_text = st.builds(
        lambda piece, times: (piece * times)[:2_500],
        st.text(alphabet=alphabet, min_size=1, max_size=30),
        st.integers(1, 400),
    )

    @properties(max(10, examples // 5))
    @given(
        body=st.one_of(st.text(alphabet=alphabet, min_size=1, max_size=300), long_text),
        people=st.integers(1, 5),
    )
    def check(body, people):
        sandbox.reset()
        rows = [{"phone": f"+49151{20_000_000 + i:08d}", "text": body} for i in range(people)]
        op = _operator(conn_id, sqlite_conn_id, rows, "phone", "{{ text }}")
        try:
            summary = op.execute(task_context())
        except Exception as exc:
            assert_clear(exc)
            return
        _accounted(summary, people)
        event("sent" if summary["accepted"] else "rejected with a reason")
        ledger = MessageLedger(sqlite_conn_id)
        try:
            entries = ledger.in_state(summary["campaign_key"], STATES)
        finally:
            ledger.close()
        assert all(e.error for e in entries if e.state == "rejected")
        stored = sandbox.messages(gateway=gateway)
        assert len(stored) == summary["accepted"]
        expected = body.strip()
        assert all(m["body"] == expected for m in stored), (
            "the gateway got another text than the rendered one"
        )

    check()


# ------------------------------------------------------------------------------------------- dates
def test_any_date_value_formats_for_the_gateway_or_fails_clearly(examples, sandbox, monkeypatch):
    from airflow_provider_sms.hooks import get_gateway_hook

    hooks = [
        get_gateway_hook(set_connection(monkeypatch, f"dates_{g}", g, sandbox.url, {"timezone": tz}))
        for g, tz in (
            ("smstools", "UTC"),
            ("smsgateway24", "Europe/Berlin"),
            ("textboost", "America/Sao_Paulo"),
        )
    ]

    @properties(examples)
    @given(
        moment=st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.one_of(st.none(), st.timezones()),
        ),
        text=st.one_of(
            st.text(max_size=30),
            st.from_regex(r"\A\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?\Z"),
            st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        ),
    )
    def check(moment, text):
        for hook in hooks:
            try:
                formatted = hook.format_time(moment)
            except Exception as exc:
                assert_clear(exc)
            else:
                assert isinstance(formatted, str) and formatted
            parsed = hook.parse_time(text)  # a gateway's timestamp: parsed or None, never a crash
            assert parsed is None or isinstance(parsed, datetime)
        event("formatted; gateway text " + ("parsed" if parsed else "unreadable (None)"))

    check()


def test_dates_in_the_audience_render_as_text(sandbox, monkeypatch, sqlite_conn_id):
    conn_id = set_connection(monkeypatch, "dates_smsgateway24", "smsgateway24", sandbox.url)
    rows = [
        {"phone": "+4915112345001", "when": date(2026, 12, 24)},
        {"phone": "+4915112345002", "when": pendulum.datetime(2026, 12, 24, 18, tz="Europe/Berlin")},
        {"phone": "+4915112345003", "when": None},
    ]
    summary = _operator(conn_id, sqlite_conn_id, rows, "phone", "See you on {{ when }}").execute(
        task_context()
    )

    assert summary["accepted"] == 3
    bodies = sorted(m["body"] for m in sandbox.messages(gateway="smsgateway24"))
    assert bodies == ["See you on", "See you on 2026-12-24", "See you on 2026-12-24 18:00:00+01:00"]
