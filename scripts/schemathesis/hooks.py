"""Schemathesis hooks for Peregrine: authenticates every generated request the way the server
verifies it, so the signed operations are exercised past their 401.

- REST (gateway/src/rest/auth.rs): X-Auth-Apikey, X-Auth-Nonce (Unix ms, strictly increasing
  per key, within the server's window) and X-Auth-Signature = hex(HMAC-SHA256(secret,
  nonce + METHOD + path-and-query + hex(SHA-256(body)))), from SCHEMATHESIS_REST_KEY and
  SCHEMATHESIS_REST_SECRET. The method, path and body are those of the request as `requests`
  prepares it from the case (what goes on the wire), signed again just before each call.
- Identity: the session cookie `peregrine_session` and the X-CSRF-Token header, from
  SCHEMATHESIS_SESSION_COOKIE and SCHEMATHESIS_CSRF_TOKEN (a verified user's login).
- Control API: Authorization: Bearer <token>, from SCHEMATHESIS_BEARER_TOKEN.

Loaded by scripts/schemathesis/run through SCHEMATHESIS_HOOKS. Nonces come from one lock, so
they increase even across threads; run with one worker, or requests could reach the server out
of nonce order and be refused as replays.
"""

import hashlib
import hmac
import os
import threading
import time

import requests
import schemathesis

_lock = threading.Lock()
_last_nonce_ms = 0


def _next_nonce_ms() -> int:
    """Now in Unix ms, or one above the last nonce if the clock has not moved since."""
    global _last_nonce_ms
    with _lock:
        _last_nonce_ms = max(int(time.time() * 1000), _last_nonce_ms + 1)
        return _last_nonce_ms


# The signatures this module made, by nonce: a request still carrying one was not tampered
# with by a check, and is signed again for its send.
_issued: dict[str, str] = {}
# Bound on remembered signatures (a long run makes one per call).
_ISSUED_MAX = 100_000
# Any origin: only the path and query of the prepared URL are signed.
_ORIGIN = "http://peregrine.invalid"
# What `requests.Request` takes of the case's transport arguments.
_REQUEST_FIELDS = ("method", "url", "headers", "files", "data", "params", "cookies", "json")


def _request_parts(case) -> tuple[str, str, bytes]:
    """The method, path with query, and body bytes that `case` sends."""
    arguments = case.as_transport_kwargs(base_url=_ORIGIN)
    fields = {name: arguments[name] for name in _REQUEST_FIELDS if name in arguments}
    prepared = requests.Request(**fields).prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return prepared.method, prepared.path_url, body


def sign(secret: str, nonce_ms: int, case) -> str:
    method, path, body = _request_parts(case)
    message = f"{nonce_ms}{method}{path}{hashlib.sha256(body).hexdigest()}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    with _lock:
        if len(_issued) >= _ISSUED_MAX:
            _issued.clear()
        _issued[str(nonce_ms)] = signature
    return signature


# retry_on=[]: a 401 is an answer to check, not a reason to re-sign and resend.
@schemathesis.auth(refresh_interval=None, retry_on=[])
class PeregrineAuth:
    def get(self, case, context):
        return {
            "key": os.environ.get("SCHEMATHESIS_REST_KEY"),
            "secret": os.environ.get("SCHEMATHESIS_REST_SECRET"),
            "bearer": os.environ.get("SCHEMATHESIS_BEARER_TOKEN"),
            "session": os.environ.get("SCHEMATHESIS_SESSION_COOKIE"),
            "csrf": os.environ.get("SCHEMATHESIS_CSRF_TOKEN"),
        }

    def set(self, case, data, context):
        case.headers = case.headers or {}
        if data["key"] and data["secret"]:
            nonce = _next_nonce_ms()
            case.headers["X-Auth-Apikey"] = data["key"]
            case.headers["X-Auth-Nonce"] = str(nonce)
            case.headers["X-Auth-Signature"] = sign(data["secret"], nonce, case)
        if data["bearer"]:
            case.headers["Authorization"] = f"Bearer {data['bearer']}"
        if data["session"] and data["csrf"]:
            case.cookies = {**(case.cookies or {}), "peregrine_session": data["session"]}
            case.headers["X-CSRF-Token"] = data["csrf"]


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Re-signs, with a fresh nonce, a request that carries this hook's own valid signature.

    Credentials are set on a case when it is generated, and one case can be sent more than once
    (checks resend it, Hypothesis replays it): each send needs its own nonce, or the server
    rightly refuses it as a replay. Headers a check removed or changed on purpose are left
    alone, so the server's refusal of them is still tested.
    """
    key = os.environ.get("SCHEMATHESIS_REST_KEY")
    secret = os.environ.get("SCHEMATHESIS_REST_SECRET")
    headers = case.headers or {}
    if not (key and secret) or headers.get("X-Auth-Apikey") != key:
        return
    nonce = headers.get("X-Auth-Nonce", "")
    with _lock:
        issued = _issued.get(nonce)
    if issued is None or headers.get("X-Auth-Signature") != issued:
        return
    fresh = _next_nonce_ms()
    headers["X-Auth-Nonce"] = str(fresh)
    headers["X-Auth-Signature"] = sign(secret, fresh, case)
