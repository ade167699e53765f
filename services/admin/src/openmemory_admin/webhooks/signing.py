"""The signature on every delivery, as Stripe and GitHub sign theirs.

`OpenMemory-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`.
The timestamp is inside the signed text, so a receiver that refuses old timestamps (say, older
than five minutes) refuses replays; the body is signed byte for byte, so it must be checked
before it is parsed. `verify` is what a receiver does (README, "Webhooks").
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "OpenMemory-Signature"
EVENT_ID_HEADER = "OpenMemory-Event-Id"
WEBHOOK_ID_HEADER = "OpenMemory-Webhook-Id"
ATTEMPT_HEADER = "OpenMemory-Delivery-Attempt"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header's value for a delivery made now (or at `timestamp`)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={signature(secret, at, body)}"


def verify(secret: str, header: str, body: bytes, tolerance: float = TOLERANCE_SECONDS) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance` seconds of now."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        at = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - at) > tolerance:
        return False
    expected = signature(secret, at, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
