"""Server-side sessions in Redis, CSRF tokens and login throttling (docs/admin.md#security).

The cookie holds only a random session id; Redis keys are the id's SHA-256, so
a Redis dump cannot be replayed as cookies. Login makes a brand-new id (the
anonymous one is deleted): a session id planted before login is worthless
after it (session fixation). Every session, anonymous ones included, has its
own CSRF token, checked on every POST.

Each signed-in session's key is also listed in a per-user set, so that a
password change or "sign out everywhere" can end the user's other sessions.
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
#: the keys of one user's signed-in sessions (a Redis set, kept as long as its newest session)
USER_SESSIONS_PREFIX = "pz:admin:user-sessions:"

#: failed logins before a phone (or an address) must wait
PHONE_FAILURES = 5
IP_FAILURES = 30
THROTTLE_SECONDS = 15 * 60


def _key(session_id: str) -> str:
    return PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def _user_sessions_key(user_id: int) -> str:
    return f"{USER_SESSIONS_PREFIX}{user_id}"


# Ends every session listed for a user but one (ARGV[1], "" for none) in one step, so a
# login racing with it is either ended or listed afterwards, never forgotten in between.
_REVOKE_SESSIONS = """
local keep = ARGV[1]
local ended = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if key ~= keep then
    ended = ended + redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[1])
if keep ~= '' then
  redis.call('SADD', KEYS[1], keep)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return ended
"""


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
        if not session.user_id:
            await self.redis.set(_key(session.id), json.dumps(session.data), ex=ANONYMOUS_SECONDS)
            return
        pipe = self.redis.pipeline(transaction=True)
        # an existing session is only updated (XX): a request that loaded it before the user
        # signed out everywhere must not bring it back by saving a flash message afterwards
        pipe.set(_key(session.id), json.dumps(session.data), ex=SESSION_SECONDS, xx=not session.new)
        # the list outlives every session in it: it is extended whenever one of them is saved
        pipe.sadd(_user_sessions_key(session.user_id), _key(session.id))
        pipe.expire(_user_sessions_key(session.user_id), SESSION_SECONDS)
        await pipe.execute()

    async def delete(self, session: Session) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(_key(session.id))
        if session.user_id:
            pipe.srem(_user_sessions_key(session.user_id), _key(session.id))
        await pipe.execute()
        session.deleted = True

    async def end_user_sessions(self, user_id: int, keep: Session | None = None) -> int:
        """End every signed-in session of the user except ``keep``; returns how many ended."""
        keep_key = _key(keep.id) if keep is not None else ""
        ended = await self.redis.eval(_REVOKE_SESSIONS, 1, _user_sessions_key(user_id), keep_key, SESSION_SECONDS)
        return int(ended)

    async def rotate(self, old: Session | None, data: dict[str, Any]) -> Session:
        """A new id and a new CSRF token for a new privilege level (login, logout)."""
        if old is not None:
            await self.delete(old)
        return await self.create(data)

    async def touch(self, session: Session) -> None:
        await self.redis.expire(_key(session.id), SESSION_SECONDS if session.user_id else ANONYMOUS_SECONDS)


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(session.csrf, sent)


# One try of a password, counted before it is checked: refused (the seconds left) when the phone or
# the address already used up its tries, else counted against both at once. Checking and counting
# in one script is what makes the limit hold when many tries arrive together.
_RESERVE_TRY = """
for i = 1, 2 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
      redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
      ttl = tonumber(ARGV[3])
    end
    return math.max(ttl, 1)
  end
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  end
end
return 0
"""

# A right password: the phone starts afresh, and the address gets its try back.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


class LoginThrottle:
    """Tries of a password per phone and per client address in Redis, for 15 minutes.

    Every try is counted *before* the password is checked (:meth:`reserve`), so
    40 tries sent at once are not all checked: only the first
    :data:`PHONE_FAILURES` get through. A right password gives the try back
    (:meth:`succeeded`), so only wrong ones use the allowance up. The same
    counters serve the sign-in form and the profile's password change.
    """

    prefix = "pz:admin:login-fail"
    phone_limit = PHONE_FAILURES
    ip_limit = IP_FAILURES
    seconds = THROTTLE_SECONDS

    def __init__(self, redis) -> None:
        self.redis = redis

    @classmethod
    def _keys(cls, phone: str, ip: str) -> tuple[str, str]:
        return f"{cls.prefix}:phone:{phone}", f"{cls.prefix}:ip:{ip}"

    async def reserve(self, phone: str, ip: str) -> int:
        """Count one try: 0 when the password may be checked now, else the seconds to wait."""
        return int(
            await self.redis.eval(
                _RESERVE_TRY, 2, *self._keys(phone, ip), self.phone_limit, self.ip_limit, self.seconds
            )
        )

    async def succeeded(self, phone: str, ip: str) -> None:
        await self.redis.eval(_SUCCEEDED, 2, *self._keys(phone, ip))


#: asks for a password-recovery link: per phone, per client address, per hour
RECOVERY_PER_PHONE = 3
RECOVERY_PER_IP = 20
RECOVERY_SECONDS = 3600


class RecoveryThrottle(LoginThrottle):
    """Asks for a "forgot password" link, counted like password tries but on their own counters.

    Every ask counts (there is no right answer to give a try back): a phone gets
    :data:`RECOVERY_PER_PHONE` e-mails an hour at most, so the form cannot be used
    to flood someone's mailbox, and one address cannot walk through many phones.
    """

    prefix = "pz:admin:recovery"
    phone_limit = RECOVERY_PER_PHONE
    ip_limit = RECOVERY_PER_IP
    seconds = RECOVERY_SECONDS
