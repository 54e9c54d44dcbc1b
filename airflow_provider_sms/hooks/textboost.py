"""TextBoost SMS: the white-label "Ultimate SMS" API, reached on www.textboostsms.com or a reseller's domain.

JSON bodies with a Bearer token (connection ``password``); answers are ``{"status": "success",
"data": ...}`` or ``{"status": "error", "message": ...}``; lists are Laravel pages (gateways.md, section 3).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property, partial
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sms.messages import ContactResult, InboundMessage, OutboundMessage, StatusReport

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsPagingError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.base import (
    Call,
    Capabilities,
    PageParser,
    ReportBuilder,
    SmsGatewayHook,
    chunked,
    parse_amount,
)
from airflow_provider_sms.messages import (
    Contact,
    Credit,
    DeliveryStatus,
    InvalidPhoneNumberError,
    SendResult,
    body_hash,
    count_segments,
    map_status,
)

# gateways.md, "Status strings" (the platform capitalises them; map_status ignores case).
STATUS_MAP: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "sent": DeliveryStatus.SENT,
    "enroute": DeliveryStatus.SENT,
    "submitted": DeliveryStatus.SENT,
    "pending": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.SCHEDULED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.REJECTED,
    "blocked": DeliveryStatus.REJECTED,
}
DEFAULT_API_PREFIX = "/api/v3"
API_PREFIXES = ("/api/v3", "/api/http")
SCHEDULE_FORMAT = "YYYY-MM-DD HH:mm"  # PHP "Y-m-d H:i"
# Send fields an OutboundMessage may carry in ``options`` (others belong to other gateways: ignored).
SEND_OPTIONS = ("type", "language", "gender", "media_url", "dlt_template_id")
_AUTH_TEXT = re.compile(r"unauthenticated|unauthori[sz]ed|permission|api token", re.IGNORECASE)
_NUMBER = re.compile(r"\d{5,}")


class TextBoostHook(SmsGatewayHook):
    """TextBoost SMS (Ultimate SMS platform): contact groups, contacts, sends, campaigns, reports.

    Connection: ``password`` = API token (sent as ``Authorization: Bearer``), ``host`` = the
    platform's URL (default ``https://www.textboostsms.com``; resellers run the same API on their
    own domains). The API lives under the ``api_prefix`` extra (``/api/v3`` default, or
    ``/api/http``), appended to the host: ``https://sms.reseller.example`` becomes
    ``https://sms.reseller.example/api/v3``, and a host with a path (an install in a sub-folder,
    ``https://reseller.example/sms``) gets it after that path. A host whose path already ends in
    ``/api/v3`` or ``/api/http`` (pasted from the vendor's docs) is taken as given. Other extras:
    ``sender_id`` (default sender), ``timezone`` (of ``schedule_time``; use the account's).

    Errors: HTTP 401 and 403 raise ``SmsAuthError`` (403 is a missing permission or a refused
    send, e.g. no SMS units left: nothing was stored and retrying cannot help until someone acts,
    so it stops the run instead of rejecting the rows); 404 and 422 raise ``SmsValidationError``.

    ``send_batch`` sends messages with the same body, sender, schedule and type as one request
    with comma-separated recipients (see there for how a refused number is handled). TextBoost
    stores no idempotency key: ``find_sent`` matches recent messages by recipient and body.

    Contacts: there is no batch endpoint, so ``upsert_contacts`` writes one contact per request;
    only ``phone``, ``first_name`` and ``last_name`` are stored (birthday, extras and
    ``unsubscribed`` are not part of the API).

    """

    hook_name = "TextBoost SMS"
    gateway = "textboost"
    default_base_url = "https://www.textboostsms.com"
    default_path = ""  # the API prefix comes from the api_prefix extra: see base_url
    max_batch_size = 500  # recipients per /sms/send (our choice: the docs give no limit)
    capabilities = Capabilities(newsletter="campaign", credit="segments")
    status_map = STATUS_MAP
    # Items per list page, sent as ``per_page`` (our choice: Laravel's default is 25; a gateway that
    # ignores it or caps it lower still pages right, by page number). 1,000, the most our sandbox
    # serves: reading a million statuses 100 at a time cost more in requests than in the rows.
    page_size = 1000

    @cached_property
    def base_url(self) -> str:
        """The host (with any install path) plus ``api_prefix``, unless it already ends in an API prefix."""
        root = super().base_url
        prefix = "/" + str(self.extra("api_prefix", DEFAULT_API_PREFIX)).strip("/")
        return root if root.endswith((prefix, *API_PREFIXES)) else root + prefix

    # ---------------------------------------------------------------------------------------------
    # Auth and envelope

    def _authorize(self, call: Call) -> Call:
        token = (self.connection.password or "").strip()
        if not token:
            raise SmsAuthError("the connection has no API token (its password field)", gateway=self.gateway)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        return replace(call, headers={**headers, **call.headers})

    def _raise_for_envelope(self, call: Call, status: int, payload: Any) -> None:
        if status >= 500 or status == 429:
            return  # transient: base decides about retries
        is_error = isinstance(payload, dict) and str(payload.get("status", "")).lower() == "error"
        if status < 400 and not is_error:
            return
        message = _error_message(payload) or f"HTTP {status} on {call.method} {call.path}"
        if status in (401, 403) or (status < 400 and _AUTH_TEXT.search(message)):
            raise SmsAuthError(message)
        raise SmsValidationError(message)

    def _test_call(self) -> Call:
        return Call("GET", "me")

    def _data(self, call: Call, *keys: str) -> Any:
        """The ``data`` of the success envelope; with ``keys``, an object that holds them."""
        payload = self.request_object(call)
        if "data" not in payload:
            raise self.malformed(call, 'no "data" in the answer')
        return self.expect_object(call, payload["data"], *keys) if keys else payload["data"]

    # ---------------------------------------------------------------------------------------------
    # Account

    def me(self) -> dict[str, Any]:
        """GET /me: the account's profile."""
        return self._data(Call("GET", "me"))

    def balance(self) -> dict[str, Any]:
        """GET /balance: ``remaining_balance`` (SMS units, as the gateway writes them) and ``expired_on``."""
        return self._data(Call("GET", "balance"))

    def get_credit(self) -> Credit:
        """The SMS units left (one per segment), from GET /balance's ``remaining_balance``."""
        call = Call("GET", "balance")
        data = self._data(call, "remaining_balance")
        with self.parsing(call):
            return Credit(float(parse_amount(data["remaining_balance"])), "segments")

    # ---------------------------------------------------------------------------------------------
    # Contact groups

    def create_group(self, name: str) -> dict[str, Any]:
        """POST /contacts: a new contact group (its ``uid`` is the group id)."""
        return self._data(Call("POST", "contacts", json={"name": name}, idempotent=False), "uid")

    def list_groups(self) -> Iterator[dict[str, Any]]:
        """GET /contacts: every contact group, paged lazily."""
        return self.paginate(self._list_call("GET", "contacts"), self._pages())

    def get_group(self, group_id: str) -> dict[str, Any]:
        """POST /contacts/{group_id}/show: one contact group."""
        return self._data(Call("POST", f"contacts/{group_id}/show"))

    def rename_group(self, group_id: str, name: str) -> dict[str, Any]:
        """PATCH /contacts/{group_id}: rename a contact group."""
        return self._data(Call("PATCH", f"contacts/{group_id}", json={"name": name}))

    def delete_group(self, group_id: str) -> None:
        """DELETE /contacts/{group_id}: delete a contact group."""
        self.request(Call("DELETE", f"contacts/{group_id}"))

    def create_list(self, name: str) -> str:
        """A new contact group called ``name``; returns its uid."""
        return str(self.create_group(name)["uid"])

    def find_list(self, name: str) -> str | None:
        """The uid of the first contact group called exactly ``name`` (GET /contacts), or None."""
        return next((str(g["uid"]) for g in self.list_groups() if g.get("name") == name), None)

    # ---------------------------------------------------------------------------------------------
    # Contacts

    def create_contact(
        self, group_id: str, phone: str, first_name: str | None = None, last_name: str | None = None
    ) -> dict[str, Any]:
        """POST /contacts/{group_id}/store: add a contact (its ``uid`` is the contact id)."""
        body = _fields(phone=self.wire_phone(phone), first_name=first_name, last_name=last_name)
        return self._data(Call("POST", f"contacts/{group_id}/store", json=body, idempotent=False), "uid")

    def get_contact(self, group_id: str, contact_id: str) -> dict[str, Any]:
        """POST /contacts/{group_id}/search/{uid}: one contact."""
        return self._data(Call("POST", f"contacts/{group_id}/search/{contact_id}"))

    def update_contact(
        self,
        group_id: str,
        contact_id: str,
        phone: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """PATCH /contacts/{group_id}/update/{uid}: change a contact's phone and names."""
        body = _fields(phone=self.wire_phone(phone), first_name=first_name, last_name=last_name)
        return self._data(Call("PATCH", f"contacts/{group_id}/update/{contact_id}", json=body))

    def delete_contact(self, group_id: str, contact_id: str) -> None:
        """DELETE /contacts/{group_id}/delete/{uid}: delete a contact."""
        self.request(Call("DELETE", f"contacts/{group_id}/delete/{contact_id}"))

    def list_group_contacts(self, group_id: str) -> Iterator[dict[str, Any]]:
        """POST /contacts/{group_id}/all: a group's contacts, paged lazily."""
        return self.paginate(self._list_call("POST", f"contacts/{group_id}/all"), self._pages())

    def upsert_contacts(self, contacts: Sequence[Contact], list_id: str) -> list[ContactResult]:
        """One request per contact (no batch endpoint): store without ``contact_id``, else update.

        Invalid numbers and the gateway's 404/422 refusals are rejects of their own row.
        """

        def write(contact: Contact) -> str:
            names = {"first_name": contact.first_name, "last_name": contact.last_name}
            if contact.contact_id is None:
                data = self.create_contact(list_id, contact.phone, **names)
            else:
                data = self.update_contact(list_id, contact.contact_id, contact.phone, **names)
            return str(data["uid"])

        return [self.write_contact(c, lambda c=c: write(c), _status_code) for c in contacts]

    def delete_contacts(self, contact_ids: Iterable[str], list_id: str) -> None:
        """One DELETE per contact; a contact already gone (404) counts as deleted."""
        self.delete_each(contact_ids, lambda contact_id: self.delete_contact(list_id, contact_id))

    def list_contacts(self, list_id: str) -> Iterator[Contact]:
        """The group's contacts as :class:`Contact` (POST /contacts/{group_id}/all), paged lazily."""
        for row in self.list_group_contacts(list_id):
            yield Contact(
                phone=self.from_wire_phone(_contact_field(row, "phone")),
                first_name=_contact_field(row, "first_name"),
                last_name=_contact_field(row, "last_name"),
                unsubscribed=str(_contact_field(row, "status") or "").lower() == "unsubscribe",
                contact_id=str(row["uid"]),
            )

    # ---------------------------------------------------------------------------------------------
    # Sending

    def send_sms(
        self,
        recipients: str | Sequence[str],
        message: str | None,
        *,
        sender_id: str | None = None,
        sms_type: str = "plain",
        schedule_time: datetime | None = None,
        **fields: str | None,
    ) -> list[dict[str, Any]]:
        """POST /sms/send: one message to one or more numbers; returns the message objects, one per
        recipient (the gateway answers one object for one recipient, a list for several).

        :param sender_id: a number or up to 11 alphanumerics; default the connection's ``sender_id``.
        :param sms_type: ``plain``, ``unicode``, ``voice``, ``mms``, ``whatsapp``, ``viber`` or ``otp``.
        :param schedule_time: sent as ``Y-m-d H:i`` in the connection's timezone.
        :param fields: ``language`` (e.g. ``en-gb``) and ``gender`` (``male``/``female``) for voice,
            ``media_url`` for mms (``message`` is then optional), ``dlt_template_id``.
        """
        numbers = [recipients] if isinstance(recipients, str) else recipients
        body = {
            "recipient": ",".join(self.wire_phone(n) for n in numbers),
            **self._sms_fields(message, sender_id, sms_type, schedule_time, **fields),
        }
        call = Call("POST", "sms/send", json=body, creates_messages=True)
        return self._message_objects(call, self._data(call))

    def _message_objects(self, call: Call, data: Any) -> list[dict[str, Any]]:
        """The message objects of a /sms/send answer, each with its ``uid`` (the acceptance)."""
        objects = _as_list(data)
        if not objects:
            raise self.malformed(call, "no message objects in the answer")
        return [self.expect_object(call, obj, "uid") for obj in objects]

    def send_campaign(
        self,
        contact_list_ids: Sequence[str] | str,
        message: str | None,
        *,
        sender_id: str | None = None,
        sms_type: str = "plain",
        schedule_time: datetime | None = None,
        **fields: str | None,
    ) -> dict[str, Any]:
        """POST /sms/campaign: one message to every contact of the groups (TextBoost's newsletter);
        returns the campaign (``uid``...). Parameters as :meth:`send_sms`."""
        lists = [contact_list_ids] if isinstance(contact_list_ids, str) else contact_list_ids
        body = {
            "contact_list_id": ",".join(str(i) for i in lists),
            **self._sms_fields(message, sender_id, sms_type, schedule_time, **fields),
        }
        return self._data(Call("POST", "sms/campaign", json=body, creates_messages=True), "uid")

    def view_campaign(self, uid: str) -> dict[str, Any]:
        """GET /campaign/{uid}/view: one campaign of :meth:`send_campaign`, as the platform shows it:
        ``id``, ``name``, ``message``, ``status`` (``done`` once finished), ``type``, ``created_at``,
        ``start_at``, ``delivery_at`` (display dates, e.g. ``30th Aug 25, 8:14 AM``, left as given) and
        ``stats`` (``delivered_count``, ``undelivered_count``, ``failed_count``, ``enroute_count``...).
        An unknown uid raises ``SmsValidationError`` (404)."""
        return self._data(Call("GET", f"campaign/{uid}/view"), "id")

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """POST /sms/send once per distinct (body, sender, schedule, type and options), with the
        recipients comma-separated (at most :attr:`batch_size` per request); results in input order.

        ``options`` may set ``type`` (default ``plain``, or ``unicode`` when the body needs UCS-2),
        ``language``, ``gender``, ``media_url`` and ``dlt_template_id``. Numbers that cannot be
        normalised are rejected without being sent. The gateway refuses a whole request with 422
        when one recipient is invalid, storing nothing: the numbers its message names are rejected
        and the rest is sent again (until a request passes or names none of its numbers). A refusal
        naming no recipient (bad sender, past schedule, a wrong URL...) is raised: it is about the
        request, and the messages must stay unsent until it is fixed.
        When a later request fails after earlier ones were stored, ``SmsAmbiguousSendError`` is
        raised so that the caller looks the batch up (:meth:`find_sent`) instead of resending it.
        """
        results: list[SendResult | None] = [None] * len(messages)
        groups: dict[str, tuple[dict[str, Any], list[tuple[int, str]]]] = {}  # request fields → rows
        # A batch shares a handful of (text, sender, schedule, options): their fields are built once
        # each, not once per message (options by identity, the messages holding them meanwhile).
        known: dict[tuple[Any, ...], tuple[dict[str, Any], list[tuple[int, str]]]] = {}
        for index, number in self.wire_numbers(messages, results):
            m = messages[index]
            same = (m.body, m.sender, m.send_at, id(m.options) if m.options else None)
            group = known.get(same)
            if group is None:
                fields = self._message_fields(m)
                group = known[same] = groups.setdefault(json.dumps(fields, sort_keys=True), (fields, []))
            group[1].append((index, number))
        for fields, rows in groups.values():
            for chunk in chunked(rows, self.batch_size):
                try:
                    for index, result in self._send_chunk(fields, chunk, messages):
                        results[index] = result
                except SmsAmbiguousSendError:
                    raise
                except SmsGatewayError as exc:
                    if not any(r is not None and r.accepted for r in results):
                        raise  # nothing stored yet: the caller may treat the batch as not sent
                    raise SmsAmbiguousSendError(
                        f"a send request failed after earlier requests of this batch were stored "
                        f"({exc}); look the batch up before sending it again",
                        gateway=self.gateway,
                    ) from exc
        return results  # type: ignore[return-value]  # every row was filled

    def _send_chunk(
        self, fields: dict[str, Any], rows: list[tuple[int, str]], messages: Sequence[OutboundMessage]
    ) -> list[tuple[int, SendResult]]:
        """One /sms/send for ``rows`` (index, wire number); numbers a 422 names are dropped and the rest resent."""
        outcomes = []
        while rows:
            numbers = [number for _, number in rows]
            body = {"recipient": ",".join(numbers), **fields}
            call = Call("POST", "sms/send", json=body, creates_messages=True)
            try:
                data = self._data(call)
            except SmsValidationError as exc:  # nothing was stored
                named = set(_NUMBER.findall(exc.message)) & set(numbers)
                if not named:
                    raise  # about the request (sender, schedule, a wrong URL...), not its recipients
                refused = [row for row in rows if row[1] in named]
                outcomes += [
                    (i, SendResult.rejected(messages[i], exc.message, "invalid_phone")) for i, _ in refused
                ]
                rows = [row for row in rows if row[1] not in named]
                continue
            objects = _pair(numbers, self._message_objects(call, data))
            if any(obj is None for obj in objects):  # fewer objects than numbers: which were stored?
                raise self.malformed(call, f"{len(numbers)} recipients but fewer message objects")
            with self.parsing(call):
                return outcomes + [
                    (i, _accepted(messages[i], obj)) for (i, _), obj in zip(rows, objects, strict=True)
                ]
        return outcomes

    def _message_fields(self, message: OutboundMessage) -> dict[str, Any]:
        options = {name: message.options.get(name) for name in SEND_OPTIONS}
        sms_type = options.pop("type") or (
            "unicode" if count_segments(message.body).encoding == "UCS-2" else "plain"
        )
        return self._sms_fields(message.body, message.sender, sms_type, message.send_at, **options)

    def _sms_fields(
        self,
        message: str | None,
        sender_id: str | None,
        sms_type: str,
        schedule_time: datetime | None,
        dlt_template_id: str | None = None,
        language: str | None = None,
        gender: str | None = None,
        media_url: str | None = None,
    ) -> dict[str, Any]:
        """The fields of /sms/send and /sms/campaign other than the recipients."""
        sender = sender_id or self.extra("sender_id")
        if not sender:
            raise ValueError("TextBoost needs a sender_id: pass one or set the connection's sender_id extra")
        if sms_type == "voice" and not (language and gender):
            raise ValueError("a TextBoost voice message needs language (e.g. en-gb) and gender (male/female)")
        if sms_type == "mms" and not media_url:
            raise ValueError("a TextBoost mms message needs media_url")
        return _fields(
            sender_id=sender,
            type=sms_type,
            message=message,
            schedule_time=None if schedule_time is None else self.format_time(schedule_time, SCHEDULE_FORMAT),
            dlt_template_id=dlt_template_id,
            language=language,
            gender=gender,
            media_url=media_url,
        )

    # ---------------------------------------------------------------------------------------------
    # Messages and statuses

    def get_message(self, uid: str) -> StatusReport:
        """GET /sms/{uid}: one message's status."""
        call = Call("GET", f"sms/{uid}")
        data = self._data(call, "uid")
        with self.parsing(call):
            return self._report(data)

    def list_messages(self) -> Iterator[StatusReport]:
        """GET /sms: every message (inbound ones as ``received``), paged lazily."""
        return self.paginate(self._list_call("GET", "sms"), self._pages(self._report))

    def _status_listing(self, since: datetime | None, build: ReportBuilder) -> tuple[Call, PageParser]:
        """GET /sms, which has no date filter: pages are read only as far as ``since`` reaches
        (see :class:`_RecentPages`), and older messages are left out."""
        return self._list_call("GET", "sms"), _RecentPages(
            self, since, render=partial(self._report, build=build)
        )

    def find_sent(
        self, messages: Sequence[OutboundMessage], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """Messages created after ``since`` whose recipient and body (trimmed, as the platform stores
        it) match, by ``key`` (the newest match wins). Without ``since`` the whole history is read, and
        an identical older message would count as found: always pass the time the send started."""
        wanted: dict[tuple[str, str], str] = {}
        for message in messages:
            if message.key:
                try:
                    wanted[(self.wire_phone(message.to), message.text_hash)] = message.key
                except InvalidPhoneNumberError:
                    continue  # never sent
        found: dict[str, StatusReport] = {}
        for report in self.iter_statuses(since):
            key = wanted.get((self.to_wire_phone(report.recipient or ""), body_hash(report.body or "")))
            previous = found.get(key) if key else None
            if key and (previous is None or _newer(report, previous)):
                found[key] = replace(report, key=key)
        return found

    def _reply_listing(self, since: datetime | None) -> tuple[Call, PageParser]:
        """GET /sms, read as far as ``since`` reaches (as :meth:`_status_listing`), keeping the messages
        whose ``direction`` is inbound: ``from`` is the phone that wrote, ``to`` our number."""

        def listed(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], datetime | None]:
            return obj, self.received_time(obj.get("created_at"))

        pages = _RecentPages(self, since, render=listed, created=itemgetter(1))

        def parse(payload: Any, call: Call) -> tuple[list[InboundMessage], Call | None]:
            items, next_call = pages(payload, call)
            replies = [
                self.inbound(
                    obj.get("uid"), obj.get("from"), obj.get("message"), obj.get("created_at"), obj.get("to")
                )
                for obj, _ in items
                if _inbound(obj)
            ]
            return replies, next_call

        return self._list_call("GET", "sms"), parse

    def _report(self, obj: Mapping[str, Any], build: ReportBuilder | None = None) -> StatusReport:
        return (build or self.report)(
            obj["uid"],
            obj.get("status"),
            status=DeliveryStatus.RECEIVED if _inbound(obj) else None,
            recipient=obj.get("to"),
            body=obj.get("message"),
            created=obj.get("created_at"),
            updated=obj.get("updated_at"),
        )

    # ---------------------------------------------------------------------------------------------
    # Laravel pages

    def _list_call(self, method: str, path: str) -> Call:
        """The first page of a list endpoint (the page number travels in the query, also for POST)."""
        return Call(method, path, params={"page": 1, "per_page": self.page_size})

    def _pages(self, render: Callable[[Any], Any] | None = None) -> PageParser:
        """A parser of Laravel pages: ``data.data`` items (through ``render``), then the next page number."""

        def parse(payload: Any, call: Call) -> tuple[list[Any], Call | None]:
            page = _page(payload)
            items = page.get("data") or []
            return [render(i) for i in items] if render else list(items), self._next_page(page, call)

        return parse

    def _next_page(self, page: Mapping[str, Any], call: Call) -> Call | None:
        """The call for the page after ``page``, by number: ``next_page_url`` may name a host behind a
        reseller's proxy, so it only says whether there is one (when ``last_page`` is missing)."""
        current = _page_number(page, call)
        if "last_page" in page:
            more = current < int(page["last_page"] or 0)
        else:
            more = bool(page.get("next_page_url"))
        return self.with_params(call, page=current + 1) if more and page.get("data") else None

    # ---------------------------------------------------------------------------------------------
    # Newsletters

    def find_newsletter(self, title: str, body: str, since: datetime) -> str | None:
        """Always None: TextBoost has no endpoint that lists campaigns (a lost answer stays ambiguous)."""
        return None


@dataclass
class _RecentPages:
    """Page parser of GET /sms that keeps messages created at or after ``since`` and reads no further
    than needed. The order of the list is not documented, so it is read from the data: newest first,
    the listing stops at the first page that ends before ``since``; oldest first, it jumps from that
    page to the last one and walks back until a page starts before ``since``. Undecided (equal
    timestamps), it reads on. One instance per listing (it remembers the first message seen).

    ``render`` turns each message object into an item (default: its :class:`StatusReport`),
    ``created`` reads an item's creation time."""

    hook: TextBoostHook
    since: datetime | None
    render: Callable[[Mapping[str, Any]], Any] | None = None
    created: Callable[[Any], datetime | None] = attrgetter("created_at")
    started: bool = False
    first: datetime | None = None  # created_at of the first message the listing showed
    backwards_until: int | None = None  # walking back: pages up to this one were read already

    def __call__(self, payload: Any, call: Call) -> tuple[list[Any], Call | None]:
        page = _page(payload)
        render = self.render or self.hook._report
        reports = [render(obj) for obj in page.get("data") or []]
        recent = [r for r in reports if not self._old(r)]
        next_call = self.hook._next_page(page, call)
        if self.since is None or not reports:
            return recent, next_call
        if not self.started:
            self.first, self.started = self.created(reports[0]), True
        current = _page_number(page, call)
        if self.backwards_until is not None:
            done = self._old(reports[0]) or current - 1 <= self.backwards_until
            return recent, None if done else self.hook.with_params(call, page=current - 1)
        last_time = self.created(reports[-1])
        if next_call is None or not self._old(reports[-1]) or self.first is None:
            return recent, next_call
        if self.first > last_time:  # newest first: every later page is older still
            return recent, None
        last_page = int(page.get("last_page") or 0)
        if self.first < last_time and last_page > current + 1:  # oldest first: the recent ones are at the end
            self.backwards_until = current
            return recent, self.hook.with_params(call, page=last_page)
        return recent, next_call

    def _old(self, item: Any) -> bool:
        created = self.created(item)
        return self.since is not None and created is not None and created < self.since


def _inbound(obj: Mapping[str, Any]) -> bool:
    """Whether a message object is one the account received (``direction`` incoming or inbound)."""
    return str(obj.get("direction") or "").strip().lower() in ("incoming", "inbound")


def _page(payload: Any) -> Mapping[str, Any]:
    """The Laravel page of a list answer (a bare list in ``data`` is one page); anything else raises
    ``ValueError``: read as an empty page, it would prove messages absent that may be there."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, Mapping) and isinstance(data.get("data", []), list):
        return data
    if isinstance(data, list):
        return {"data": data}
    raise ValueError("the answer holds no page (data.data)")


def _page_number(page: Mapping[str, Any], call: Call) -> int:
    """The page's number, which must be the one asked for: a gateway answering another page
    (``current_page`` stuck at 1) would be read forever."""
    asked = (call.params or {}).get("page")
    current = page.get("current_page")
    if current not in (None, "") and asked is not None and int(current) != int(asked):
        raise SmsPagingError(
            f"the listing {call.method} {call.path} asked for page {asked} and got page {current}: "
            f"the gateway's paging does not advance",
            gateway="textboost",
        )
    return int(current or asked or 1)


def _pair(numbers: list[str], objects: list[Any]) -> list[Mapping[str, Any] | None]:
    """The message object of each recipient: matched by its ``to``, else the unclaimed ones in order."""
    by_to: dict[str, deque[int]] = defaultdict(deque)
    for position, obj in enumerate(objects):
        by_to[str(obj.get("to") or "").lstrip("+")].append(position)
    claimed = [by_to[n].popleft() if by_to.get(n) else None for n in numbers]
    taken = {p for p in claimed if p is not None}
    spare = iter([p for p in range(len(objects)) if p not in taken])
    paired = []
    for position in claimed:
        position = next(spare, None) if position is None else position
        paired.append(None if position is None else objects[position])
    return paired


def _as_list(data: Any) -> list[Any]:
    if data is None:
        return []
    return list(data) if isinstance(data, list) else [data]


def _newer(report: StatusReport, than: StatusReport) -> bool:
    return report.created_at is not None and (than.created_at is None or report.created_at > than.created_at)


def _error_message(payload: Any) -> str | None:
    """The envelope's ``message``, with Laravel's per-field ``errors`` (they name the invalid value)."""
    if not isinstance(payload, dict):
        return SmsGatewayHook._error_text(payload)
    message = str(payload.get("message") or "").strip()
    errors = payload.get("errors")
    if isinstance(errors, Mapping):
        details = "; ".join(str(t) for texts in errors.values() for t in _as_list(texts))
        message = f"{message}: {details}" if message and details else message or details
    return message or None


def _accepted(message: OutboundMessage, obj: Mapping[str, Any]) -> SendResult:
    status = map_status(obj["status"], STATUS_MAP) if obj.get("status") else DeliveryStatus.QUEUED
    return SendResult(message, accepted=True, message_id=str(obj["uid"]), status=status)


def _status_code(exc: SmsValidationError) -> str:
    """A refused contact's error code: the HTTP status (404, 422) of the refusal."""
    return str(exc.status_code)


def _contact_field(row: Mapping[str, Any], name: str) -> Any:
    """A contact's field under its lower-case name or, as newer releases of the platform spell
    contacts (``PHONE``, ``FIRST_NAME``, ``LAST_NAME``), its upper-case one."""
    value = row.get(name)
    return row.get(name.upper()) if value is None else value


def _fields(**fields: Any) -> dict[str, Any]:
    """JSON fields without the unset ones."""
    return {k: v for k, v in fields.items() if v is not None}
