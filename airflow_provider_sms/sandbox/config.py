"""Settings of a sandbox server: accounts, clock, persistence and the faults it starts with."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_sms.sandbox import replies
from airflow_provider_sms.sandbox.faults import FaultConfig
from airflow_provider_sms.sandbox.validation import zone

DEFAULT_SMSTOOLS_CLIENT_ID = "sandbox-client-id"
DEFAULT_SMSTOOLS_CLIENT_SECRET = "sandbox-client-secret-0123456789"
DEFAULT_SMSGATEWAY24_EMAIL = "sandbox@example.com"
DEFAULT_SMSGATEWAY24_PASSWORD = "sandbox-password-0123"
DEFAULT_TEXTBOOST_TOKEN = "sandbox-textboost-token-0123456789"
DEVICE_IDS = (1001, 1002)
SMSTOOLS_ID_STYLES = ("numbers", "strings")

# Keyword options that configure the start-up faults rather than the server itself.
FAULT_OPTIONS = {
    "rate_429": "rate_429",
    "retry_after": "retry_after",
    "rate_500": "rate_500",
    "rate_503": "rate_503",
    "latency_ms": "latency_ms",
    "commit_then_drop": "commit_then_drop",
    "fault_paths": "paths",
}


@dataclass
class SandboxConfig:
    """Everything a sandbox app needs to start; see the README's sandbox section for each option.

    :param delivery_seconds: sandbox seconds from "accepted" to the final status.
    :param seed: seed of the fault injector's random sequence.
    :param state_file: SQLite file that keeps the state across restarts (None: memory only).
    :param token_ttl: lifetime of SmsGateway24 tokens, in sandbox seconds.
    :param balance: starting credits (Smstools) and SMS units (TextBoost); one per segment sent.
    :param frozen_clock: the clock moves only through ``/_sandbox/advance``, not with real time.
    :param save_interval: seconds between snapshots of a changed state to ``state_file``.
    :param timezone: the accounts' timezone (IANA name). As at the real gateways, the schedule and
        date fields without an offset are read and written in it; a connection's ``timezone`` extra
        must name the same zone.
    :param smstools_validate_at_submission: Smstools refuses (error 103) a number that phonenumbers
        does not call valid when it is submitted. Off (the default, as the real service): a number
        that is possible but not valid (``+3161245678``) is accepted with a messageid and fails at
        delivery; only numbers that cannot be phone numbers at all are refused at submission.
    :param smstools_id_style: how Smstools answers ids and flags: ``numbers`` (ids as integers,
        ``unsubscribed`` as 0/1, as the seed documents) or ``strings`` (ids as strings,
        ``unsubscribed`` as true/false, amounts as strings, as clients written by others read them).
    :param smstools_id_salt: salt of the Smstools messageids (None: random per sandbox start).
    :param reply_rate: share of the recipients who reply to the first SMS delivered to them, by
        their number (``replies.py``); 0 turns simulated replies off.
    :param reply_seconds: sandbox seconds after delivery by which a simulated reply has arrived
        (each number's own delay lies between a tenth of it and all of it).
    """

    delivery_seconds: float = 2.0
    seed: int = 0
    state_file: str | None = None
    token_ttl: float = 3600.0
    balance: float = 1_000_000.0
    frozen_clock: bool = False
    save_interval: float = 1.0
    timezone: str = "UTC"
    smstools_client_id: str = DEFAULT_SMSTOOLS_CLIENT_ID
    smstools_client_secret: str = DEFAULT_SMSTOOLS_CLIENT_SECRET
    smsgateway24_email: str = DEFAULT_SMSGATEWAY24_EMAIL
    smsgateway24_password: str = DEFAULT_SMSGATEWAY24_PASSWORD
    textboost_token: str = DEFAULT_TEXTBOOST_TOKEN
    smstools_validate_at_submission: bool = False
    smstools_id_style: str = "numbers"
    smstools_id_salt: str | None = None
    reply_rate: float = 0.08
    reply_seconds: float = 600.0
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if zone(self.timezone) is None:
            raise ValueError(f"unknown timezone {self.timezone!r}: use an IANA name such as Europe/Berlin")
        if self.smstools_id_style not in SMSTOOLS_ID_STYLES:
            raise ValueError(
                f"unknown Smstools id style {self.smstools_id_style!r}: use {' or '.join(SMSTOOLS_ID_STYLES)}"
            )
        replies.check_simulation(self.reply_rate, self.reply_seconds)

    @classmethod
    def from_options(cls, **options: Any) -> SandboxConfig:
        """Build from flat keyword options (``run_sandbox(**options)``, CLI flags).

        Fault options (``rate_429``, ``retry_after``, ``rate_500``, ``rate_503``, ``latency_ms``,
        ``commit_then_drop``, ``fault_paths``) set the start-up faults, seeded with ``seed``.
        """
        own = {f.name for f in fields(cls)} - {"faults"}
        fault_settings = {
            FAULT_OPTIONS[key]: options.pop(key) for key in list(options) if key in FAULT_OPTIONS
        }
        unknown = set(options) - own
        if unknown:
            raise TypeError(f"unknown sandbox options: {', '.join(sorted(unknown))}")
        config = cls(**options)
        config.faults = FaultConfig(seed=config.seed, **fault_settings)
        return config

    def describe(self, url: str) -> str:
        """Human-readable start-up banner: where each API lives and which credentials it accepts."""
        return "\n".join(
            [
                f"SMS sandbox gateway on {url}  (status page {url}/ , admin API {url}/_sandbox/stats)",
                f"  Smstools      {url}/v1/...       X-Client-Id: {self.smstools_client_id}"
                f"   X-Client-Secret: {self.smstools_client_secret}"
                f"   ids as {self.smstools_id_style}; numbers checked "
                f"{'at submission' if self.smstools_validate_at_submission else 'at delivery'}",
                f"  SmsGateway24  {url}/getdata/...  email: {self.smsgateway24_email}"
                f"   password: {self.smsgateway24_password}   devices: {', '.join(map(str, DEVICE_IDS))}"
                f"   token ttl: {self.token_ttl:g} s",
                f"  TextBoost     {url}/api/v3/... and {url}/api/http/...   Authorization: Bearer "
                f"{self.textboost_token}",
                f"  delivery in {self.delivery_seconds:g} s; numbers ending in 13 are undelivered, in 66 fail",
                f"  replies: {self.reply_rate:.0%} of recipients reply ({replies.STOP_SHARE:.0%} of them STOP) "
                f"within {self.reply_seconds:g} s of delivery",
                f"  accounts' timezone: {self.timezone}; state: {self.state_file or 'in memory'}",
            ]
        )
