"""Signing webhook deliveries, and checking a signature the way a receiver must.

The signed message is ``<timestamp>.<raw body>`` (the Unix time in seconds,
a dot, the exact bytes sent); the signature is its HMAC-SHA256 under the
connection's secret, hex, sent as ``X-Perezvon-Signature: v1=<hex>``. The
timestamp is signed so an old delivery cannot be replayed later: receivers
refuse timestamps outside their tolerance (5 minutes) and remember event ids
for longer than that to drop duplicates (every try of one delivery carries the
same ``X-Perezvon-Event-Id``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


class BadSignature(ValueError):
    pass


def verify(
    secret: str,
    body: bytes,
    timestamp_header: str,
    signature_header: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """What a receiver does with a delivery; returns the timestamp, raises :class:`BadSignature`."""
    try:
        timestamp = int(timestamp_header)
    except (TypeError, ValueError):
        raise BadSignature("no valid X-Perezvon-Timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise BadSignature("timestamp outside the tolerance: a replay or a wrong clock")
    expected = signature(secret, timestamp, body)
    offered = [part.strip() for part in (signature_header or "").split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise BadSignature("signature mismatch")
    return timestamp
