"""Schemathesis hooks for Peregrine: authenticates every generated request the way the server
verifies it, so the signed operations are exercised past their 401.

- REST (gateway/src/rest/auth.rs): X-Auth-Apikey, X-Auth-Nonce (Unix ms, strictly increasing
  per key, within the server's window) and X-Auth-Signature = hex(HMAC-SHA256(secret,
  nonce + key)), from SCHEMATHESIS_REST_KEY and SCHEMATHESIS_REST_SECRET.
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

import schemathesis

_lock = threading.Lock()
_last_nonce_ms = 0


def _next_nonce_ms() -> int:
    """Now in Unix ms, or one above the last nonce if the clock has not moved since."""
    global _last_nonce_ms
    with _lock:
        _last_nonce_ms = max(int(time.time() * 1000), _last_nonce_ms + 1)
        return _last_nonce_ms


def sign(secret: str, nonce_ms: int, key: str) -> str:
    message = f"{nonce_ms}{key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


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
            case.headers["X-Auth-Signature"] = sign(data["secret"], nonce, data["key"])
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
    if not nonce.isdigit() or headers.get("X-Auth-Signature") != sign(secret, int(nonce), key):
        return
    fresh = _next_nonce_ms()
    headers["X-Auth-Nonce"] = str(fresh)
    headers["X-Auth-Signature"] = sign(secret, fresh, key)
