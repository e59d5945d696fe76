"""Server-side sessions in Redis, CSRF tokens and login throttling (docs/admin.md#security).

The cookie holds only a random session id; Redis keys are the id's SHA-256, so
a Redis dump cannot be replayed as cookies. Login makes a brand-new id (the
anonymous one is deleted): a session id planted before login is worthless
after it (session fixation). Every session, anonymous ones included, has its
own CSRF token, checked on every POST.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from typing import Any

SESSION_COOKIE = "pz_session"
SESSION_SECONDS = 12 * 3600
ANONYMOUS_SECONDS = 3600
PREFIX = "pz:admin:session:"

#: failed logins before a phone (or an address) must wait
PHONE_FAILURES = 5
IP_FAILURES = 30
THROTTLE_SECONDS = 15 * 60


def _key(session_id: str) -> str:
    return PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


@dataclasses.dataclass
class Session:
    id: str
    data: dict[str, Any]
    new: bool = False
    deleted: bool = False

    @property
    def user_id(self) -> int | None:
        return self.data.get("user_id")

    @property
    def csrf(self) -> str:
        return self.data["csrf"]


class SessionStore:
    def __init__(self, redis) -> None:
        self.redis = redis

    async def load(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.redis.get(_key(session_id))
        if raw is None:
            return None
        return Session(session_id, json.loads(raw))

    async def create(self, data: dict[str, Any] | None = None) -> Session:
        session = Session(secrets.token_urlsafe(32), {"csrf": secrets.token_urlsafe(32), **(data or {})}, new=True)
        await self.save(session)
        return session

    async def save(self, session: Session) -> None:
        ttl = SESSION_SECONDS if session.user_id else ANONYMOUS_SECONDS
        await self.redis.set(_key(session.id), json.dumps(session.data), ex=ttl)

    async def delete(self, session: Session) -> None:
        await self.redis.delete(_key(session.id))
        session.deleted = True

    async def rotate(self, old: Session | None, data: dict[str, Any]) -> Session:
        """A new id and a new CSRF token for a new privilege level (login, logout)."""
        if old is not None:
            await self.delete(old)
        return await self.create(data)

    async def touch(self, session: Session) -> None:
        await self.redis.expire(_key(session.id), SESSION_SECONDS if session.user_id else ANONYMOUS_SECONDS)


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(session.csrf, sent)


class LoginThrottle:
    """Counts failed logins per phone and per client address in Redis, for 15 minutes."""

    def __init__(self, redis) -> None:
        self.redis = redis

    @staticmethod
    def _keys(phone: str, ip: str) -> tuple[str, str]:
        return f"pz:admin:login-fail:phone:{phone}", f"pz:admin:login-fail:ip:{ip}"

    async def wait_seconds(self, phone: str, ip: str) -> int:
        """0 when a login may be tried now, else seconds to wait."""
        phone_key, ip_key = self._keys(phone, ip)
        phone_count, ip_count = await self.redis.mget(phone_key, ip_key)
        for key, count, limit in ((phone_key, phone_count, PHONE_FAILURES), (ip_key, ip_count, IP_FAILURES)):
            if count is not None and int(count) >= limit:
                return max(int(await self.redis.ttl(key)), 1)
        return 0

    async def failed(self, phone: str, ip: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for key in self._keys(phone, ip):
            # the window starts at the first failure (SET NX EX works on every Redis; EXPIRE NX needs 7)
            pipe.set(key, 0, ex=THROTTLE_SECONDS, nx=True)
            pipe.incr(key)
        await pipe.execute()

    async def succeeded(self, phone: str, ip: str) -> None:
        await self.redis.delete(self._keys(phone, ip)[0])
