"""A small fake of Stripe's API v1, a real HTTP server on 127.0.0.1 for the SDK to talk to.

It does what Kassa uses, the way Stripe does at the SDK's API version: PaymentIntents created
and confirmed in one call (`pm_card_chargeDeclined` is declined with a 402 card_error, an unknown
PaymentMethod is a 400 on `payment_method`, `payment_method_types` is no longer accepted);
refunds of a PaymentIntent, never more than it has left; and idempotency keys that replay the
first answer of an endpoint that began executing (a 500 too), and refuse the same key with other
parameters. Faults are queued per call: `"500"` answers 500 before doing anything; `"500_after"`
does the work, then answers (and keeps for the key) a 500; `"hang"` does the work and answers
only after the client has given up.

`event()` builds a webhook body for one of its refunds and `sign()` signs it as Stripe would.

It keeps the account's balance transactions as Stripe does: a charge (with its processing fee
netted in), a refund, a refund failure, a dispute (an adjustment with its $15 fee) and its
reversal, a payout of what the balance holds (`payout()`); `GET /v1/balance_transactions`
lists them by `created`, by `payout`, in pages of `page_size`, with `expand[]=data.source`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HANG_SECONDS = 5.0  # longer than the client's timeout in the tests, bounded all the same


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None


@dataclass
class Fault:
    mode: str  # "500" | "500_after" | "hang"
    method: str
    path: str


@dataclass
class FakeStripe:
    api_key: str = "sk_test_kassa"
    refund_status: str = "pending"  # what a new refund starts as
    calls: list[Call] = field(default_factory=list)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    balance_transactions: list[dict[str, Any]] = field(default_factory=list)
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_size: int = 100
    _answers: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _ids: int = 0
    server: ThreadingHTTPServer | None = None

    # -- the test's side -------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def fail_next(self, mode: str, *, count: int = 1, method: str = "POST",
                  path: str = "/v1/refunds") -> None:
        assert mode in ("500", "500_after", "hang")
        self.faults.extend(Fault(mode, method, path) for _ in range(count))

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def settle(self, refund_id: str, status: str, failure_reason: str | None = None) -> None:
        refund = self.refunds[refund_id]
        if status == "failed" and refund["status"] != "failed":  # the money comes back
            self._txn("refund_failure", "refund_failure", refund["amount"], ("refund", refund_id))
        refund.update(status=status, failure_reason=failure_reason)

    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """Stripe decides a dispute: a won one gives the disputed amount back (not the fee)."""
        dispute = self.disputes[dispute_id]
        withdrew = not dispute["status"].startswith("warning")
        dispute["status"] = status
        if status == "won" and withdrew:
            self._txn("adjustment", "dispute_reversal", dispute["amount"], ("dispute", dispute_id))
        return dispute

    def payout(self, automatic: bool = True) -> dict[str, Any] | None:
        """Pay out the balance: one payout transaction of minus the net not yet paid out (a
        manual payout's transactions cannot be listed by it, as at Stripe)."""
        with self._lock:
            unpaid = [t for t in self.balance_transactions if t["_payout"] is None]
            net = sum(t["net"] for t in unpaid)
            if net <= 0:
                return None
            payout = {"id": self._new_id("po"), "object": "payout", "amount": net,
                      "status": "paid", "automatic": automatic,
                      "reconciliation_status": "completed" if automatic else "not_applicable"}
            self.payouts[payout["id"]] = payout
            for t in unpaid:
                t["_payout"] = payout["id"]
            self._txn("payout", "payout", -net, ("payout", payout["id"]), locked=True)
            self.balance_transactions[-1]["_payout"] = payout["id"]
        return payout

    def _txn(self, type: str, category: str, amount: int, source: tuple[str, str], *,
             fee: int = 0, locked: bool = False) -> None:
        if not locked:
            with self._lock:
                return self._txn(type, category, amount, source, fee=fee, locked=True)
        self.balance_transactions.append({
            "id": self._new_id("txn"), "object": "balance_transaction", "amount": amount,
            "fee": fee, "net": amount - fee, "currency": "usd", "type": type,
            "reporting_category": category, "created": int(time.time()), "_payout": None,
            "_source": source})
        return None

    def event(self, kind: str, refund_id: str, **changes: Any) -> str:
        """A webhook body for one of this fake's refunds, as it stands (with `changes`)."""
        self._ids += 1
        obj = {**self.refunds[refund_id], **changes}
        return json.dumps({
            "id": f"evt_{self._ids:06d}", "object": "event", "api_version": "2025-01-01",
            "created": int(time.time()), "livemode": False, "type": kind,
            "data": {"object": obj}, "pending_webhooks": 1, "request": {"id": None},
        })

    def dispute(self, intent_id: str, amount: int | None = None,
                status: str = "needs_response", reason: str = "fraudulent") -> dict[str, Any]:
        """The cardholder's bank disputes a PaymentIntent's charge (as Stripe's test card
        pm_card_createDispute does): further refunds of it are refused (`charge_disputed`)."""
        intent = self.payment_intents[intent_id]
        with self._lock:
            dispute = {
                "id": self._new_id("du"), "object": "dispute",
                "amount": intent["amount"] if amount is None else amount,
                "currency": intent["currency"], "charge": f"ch_of_{intent_id}",
                "payment_intent": intent_id, "reason": reason, "status": status,
                "evidence_details": {"due_by": int(time.time()) + 7 * 86400},
                "created": int(time.time()), "is_charge_refundable": False,
            }
            self.disputes[dispute["id"]] = dispute
            if not status.startswith("warning"):  # an inquiry withdraws nothing
                self._txn("adjustment", "dispute", -dispute["amount"],
                          ("dispute", dispute["id"]), fee=1500, locked=True)
        return dispute

    def dashboard_refund(self, intent_id: str, amount: int,
                         status: str = "succeeded") -> dict[str, Any]:
        """A refund made by hand in Stripe's dashboard: no metadata of Kassa's."""
        intent = self.payment_intents[intent_id]
        with self._lock:
            intent["amount_refunded"] += amount
            refund = {"id": self._new_id("re"), "object": "refund", "amount": amount,
                      "currency": intent["currency"], "payment_intent": intent_id,
                      "status": status, "failure_reason": None, "metadata": {}}
            self.refunds[refund["id"]] = refund
            self._txn("refund", "refund", -amount, ("refund", refund["id"]), locked=True)
        return refund

    def dispute_event(self, kind: str, dispute_id: str, **changes: Any) -> str:
        """A `charge.dispute.*` webhook body for one of this fake's disputes (a decision in
        `changes` moves the balance as `close_dispute` does)."""
        dispute, new = self.disputes[dispute_id], changes.get("status")
        if (dispute["status"].startswith("warning") and isinstance(new, str)
                and not new.startswith("warning")):  # an inquiry escalated: funds withdrawn
            self._txn("adjustment", "dispute", -dispute["amount"], ("dispute", dispute_id),
                      fee=1500)
            dispute["status"] = "needs_response"
        if new in ("won", "lost") and dispute["status"] not in ("won", "lost", "warning_closed"):
            self.close_dispute(dispute_id, new)
        self.disputes[dispute_id].update(changes)
        return self._event(kind, dict(self.disputes[dispute_id]))

    def _event(self, kind: str, obj: dict[str, Any]) -> str:
        self._ids += 1
        return json.dumps({
            "id": f"evt_{self._ids:06d}", "object": "event", "api_version": "2025-01-01",
            "created": int(time.time()), "livemode": False, "type": kind,
            "data": {"object": obj}, "pending_webhooks": 1, "request": {"id": None},
        })

    @staticmethod
    def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
        """The Stripe-Signature header, computed by hand as Stripe documents it."""
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    # -- the server's side -----------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_fake{self._ids:06d}"

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(body if method == "POST" else url.query, keep_blank_values=True))
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        with self._lock:
            self.calls.append(Call(method, url.path, params, key))
            fault = next((f for f in self.faults
                          if f.method == method and url.path.startswith(f.path)), None)
            if fault is not None:
                self.faults.remove(fault)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._send(request, 401, _error("invalid_request_error", "Invalid API Key"))
        if fault is not None and fault.mode == "500":
            return self._send(request, 500, _error("api_error", "Something went wrong"))
        with self._lock:
            status, answer = self._answer(method, url.path, params, key)
            if fault is not None and fault.mode == "500_after":
                status, answer = 500, _error("api_error", "Something went wrong")
                if key:
                    self._answers[key] = (json.dumps(params, sort_keys=True), status, answer)
        if fault is not None and fault.mode == "hang":
            self._release.wait(HANG_SECONDS)
        self._send(request, status, answer)

    def _answer(self, method: str, path: str, params: dict[str, str],
                key: str | None) -> tuple[int, dict[str, Any]]:
        fingerprint = json.dumps(params, sort_keys=True)
        if key and key in self._answers:
            seen, status, answer = self._answers[key]
            if seen != fingerprint:
                return 400, _error("idempotency_error", "Keys for idempotent requests can only "
                                   "be used with the same parameters they were first used with.")
            return status, answer
        status, answer = self._route(method, path, params)
        if key and status != 400:  # Stripe keeps nothing for a request that failed validation
            self._answers[key] = (fingerprint, status, answer)
        return status, answer

    def _route(self, method: str, path: str,
               params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_payment_intent(params)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(params)
        if method == "GET" and path == "/v1/payment_intents/search":
            return 200, self._search_payment_intents(params.get("query", ""))
        if method == "GET" and path.startswith("/v1/payment_intents/"):
            intent = self.payment_intents.get(path.removeprefix("/v1/payment_intents/"))
            if intent is None:
                return 404, _error("invalid_request_error", "No such payment_intent",
                                   code="resource_missing", param="intent")
            return 200, intent
        if method == "GET" and path == "/v1/refunds":
            found = [r for r in self.refunds.values()
                     if r["payment_intent"] == params.get("payment_intent")]
            return 200, {"object": "list", "url": "/v1/refunds", "has_more": False,
                         "data": list(reversed(found))[: int(params.get("limit", 10))]}
        if method == "GET" and path == "/v1/balance_transactions":
            return self._list_balance_transactions(params)
        if method == "GET" and path.startswith("/v1/refunds/"):
            refund = self.refunds.get(path.removeprefix("/v1/refunds/"))
            if refund is None:
                return 404, _error("invalid_request_error", "No such refund",
                                   code="resource_missing", param="id")
            return 200, refund
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({path})")

    def _list_balance_transactions(self, params: dict[str, str]
                                   ) -> tuple[int, dict[str, Any]]:
        """Newest first, as Stripe lists; paged by `starting_after`."""
        if "payout" in params and not self.payouts[params["payout"]]["automatic"]:
            return 400, _error("invalid_request_error", "Balance transaction history can "
                               "only be filtered on automatic transfers, not manual.")
        found = [t for t in reversed(self.balance_transactions)
                 if int(params.get("created[gte]", 0)) <= t["created"]
                 < int(params.get("created[lt]", 2**40))
                 and params.get("payout", t["_payout"]) == t["_payout"]
                 and params.get("source", self._source_id(t)) == self._source_id(t)]
        if "starting_after" in params:
            at = [t["id"] for t in found].index(params["starting_after"])
            found = found[at + 1:]
        size = min(int(params.get("limit", 10)), self.page_size)
        expand = "data.source" in {v for k, v in params.items() if k.startswith("expand")}
        return 200, {"object": "list", "url": "/v1/balance_transactions",
                     "has_more": len(found) > size,
                     "data": [self._shown(t, expand) for t in found[:size]]}

    @staticmethod
    def _source_id(txn: dict[str, Any]) -> str:
        kind, ref = txn["_source"]
        return f"ch_of_{ref}" if kind == "charge" else ref

    def _shown(self, txn: dict[str, Any], expand: bool) -> dict[str, Any]:
        kind, ref = txn["_source"]
        if kind == "charge":
            source: Any = {"id": f"ch_of_{ref}", "object": "charge", "payment_intent": ref}
        else:
            source = {"refund": self.refunds, "dispute": self.disputes,
                      "payout": self.payouts}[kind][ref]
        if not expand:
            source = source["id"]
        return {**{k: v for k, v in txn.items() if not k.startswith("_")}, "source": source}

    def _search_payment_intents(self, query: str) -> dict[str, Any]:
        """Stripe's search, for the one query Kassa makes: metadata['k']:'v'."""
        match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", query)
        found = [] if match is None else [
            intent for intent in self.payment_intents.values()
            if intent["metadata"].get(match.group(1)) == match.group(2)]
        return {"object": "search_result", "url": "/v1/payment_intents/search",
                "has_more": False, "data": found}

    def _create_payment_intent(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        method = params.get("payment_method", "")
        if any(k.startswith("payment_method_types") for k in params):
            # As Stripe answers on API versions from 2026-09-30.endive, the SDK's own.
            return 400, _error("invalid_request_error", "payment_method_types is no longer "
                               "supported: use allowed_payment_method_types",
                               code="payment_method_types_no_longer_supported",
                               param="payment_method_types")
        if not method.startswith("pm_card_") and method != "pm_usBankAccount_processing":
            return 400, _error("invalid_request_error", f"No such PaymentMethod: '{method}'",
                               code="resource_missing", param="payment_method")
        intent = {
            "id": self._new_id("pi"), "object": "payment_intent",
            "amount": int(params["amount"]), "currency": params["currency"],
            "payment_method": method, "description": params.get("description"),
            "confirm": params.get("confirm"), "status": "succeeded", "amount_refunded": 0,
            "metadata": _metadata(params), "last_payment_error": None,
            "latest_charge": None,
        }
        if method == "pm_usBankAccount_processing":  # as Stripe's test bank account
            intent["status"] = "processing"
        if method == "pm_card_chargeDeclined":
            intent["status"] = "requires_payment_method"
            self.payment_intents[intent["id"]] = intent
            error = _error("card_error", "Your card was declined.", code="card_declined")
            error["error"].update(decline_code="generic_decline", payment_intent=intent)
            return 402, error
        self.payment_intents[intent["id"]] = intent
        if intent["status"] == "succeeded":
            intent["latest_charge"] = f"ch_of_{intent['id']}"
            fee = intent["amount"] * 29 // 1000 + 30  # 2.9 % + 30¢, netted in as Stripe does
            self._txn("charge", "charge", intent["amount"], ("charge", intent["id"]), fee=fee,
                      locked=True)
        return 200, intent

    def _create_refund(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.payment_intents.get(params.get("payment_intent", ""))
        if intent is None or intent["status"] != "succeeded":
            return 400, _error("invalid_request_error", "No such payment_intent",
                               code="resource_missing", param="payment_intent")
        if any(d["payment_intent"] == intent["id"] and d["status"] in (
                "needs_response", "under_review", "lost") for d in self.disputes.values()):
            return 400, _error("invalid_request_error", f"Charge ch_of_{intent['id']} has been "
                               "charged back; cannot issue a refund.", code="charge_disputed")
        left = intent["amount"] - intent["amount_refunded"]
        amount = int(params.get("amount", left))
        if amount > left:
            return 400, _error("invalid_request_error",
                               f"Refund amount ({amount}) is greater than unrefunded amount on "
                               f"charge ({left})", code="amount_too_large", param="amount")
        intent["amount_refunded"] += amount
        metadata = _metadata(params)
        refund = {
            "id": self._new_id("re"), "object": "refund", "amount": amount,
            "currency": intent["currency"], "payment_intent": intent["id"],
            "status": self.refund_status, "failure_reason": None, "metadata": metadata,
        }
        self.refunds[refund["id"]] = refund
        self._txn("refund", "refund", -amount, ("refund", refund["id"]), locked=True)
        return 200, refund

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.send_header("Request-Id", "req_fake")
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client gave up (a "hang"): nobody is listening any more


def _metadata(params: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata["):-1]: v for k, v in params.items() if k.startswith("metadata[")}


def _error(kind: str, message: str, *, code: str | None = None,
           param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "code": code, "param": param}}
