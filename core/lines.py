"""Operator lines: which operator number an attempt rings, and how many calls each carries
(docs/calls.md#operator-lines).

The calls on a number are counted in Redis, shared by every worker process: one sorted set per
number holds a *lease* per attempt on it, scored by the time the lease runs out. The worker
dialling renews its leases every few seconds (``CallbackEngine._keep_alive``); a worker that dies
stops renewing, and its leases lapse on their own -- the safety net for a count that would
otherwise stay taken forever.

A callback that finds every line of its group at its limit *waits*: its call stays scheduled, and
it takes a place in the group's waiting line (a sorted set by the time it first waited). A waiter
may take a line only while fewer callbacks are ahead of it than there are free lines, so the
callbacks are placed in their order of arrival. A waiter whose process died is not seen again and
leaves the line after :data:`WAITER_TTL` seconds; the sweep queues its call again, which takes its
old place back if it is still there.

Choosing a line, counting it and leaving the waiting line are one Lua script: atomic across
processes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perezvon.core.models import OperatorNumber

HUNT = "hunt"
ROUND_ROBIN = "round_robin"
RING_ALL = "ring_all"
STRATEGIES = (HUNT, ROUND_ROBIN, RING_ALL)
#: seconds a lease lives without renewal (renewed every ALIVE_EVERY seconds by the engine)
LEASE_SECONDS = 60
#: a number dialled and not answered this many attempts in a row is shown as failing in the admin
FAILING_AFTER = 3
#: seconds a waiter stays in the waiting line without looking again
WAITER_TTL = 60

#: leases renewed per script call (:meth:`Lines.renew`); Redis runs one call at a time, so a call is kept short
RENEW_CHUNK = 500

# KEYS: each lease's sorted set; ARGV[1]: the new end, ARGV[1 + i]: the i-th lease's member.
# XX: a lease given back meanwhile is not put back.
_RENEW = """
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, 'XX', ARGV[1], ARGV[i + 1])
end
return #KEYS
"""

#: KEYS: waiting line, waiters' last look, round-robin pointer, then one lease set per number.
#: ARGV: now, lease expiry, lease id, waiter id, waiter expiry, strategy, hunt start (0-based),
#: then the limit of each number, then the id of each number.
#: Returns {the waiter's arrival time, the chosen numbers (1-based; none: every line is busy)...}:
#: one number, or with ring-all every free one.
_TAKE = """
local now, lease_until, lease, waiter = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local waiter_until, strategy, start = ARGV[5], ARGV[6], tonumber(ARGV[7])
local n = #KEYS - 3
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end
local free = {}
for i = 1, n do
  local key = KEYS[3 + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, lease) then
    return {tostring(now), i}
  end
  local limit = tonumber(ARGV[7 + i])
  free[i] = limit == 0 or redis.call('ZCARD', key) < limit
end
redis.call('ZADD', KEYS[1], 'NX', now, waiter)
redis.call('ZADD', KEYS[2], waiter_until, waiter)
local arrival = redis.call('ZSCORE', KEYS[1], waiter)
local free_count = 0
for i = 1, n do
  if free[i] then free_count = free_count + 1 end
end
local ahead = redis.call('ZRANK', KEYS[1], waiter)
if ahead >= free_count then
  return {arrival}
end
if strategy == 'ring_all' then
  local taken = {arrival}
  for i = 1, n do
    if free[i] then
      redis.call('ZADD', KEYS[3 + i], lease_until, lease)
      taken[#taken + 1] = i
    end
  end
  redis.call('ZREM', KEYS[1], waiter)
  redis.call('ZREM', KEYS[2], waiter)
  return taken
end
if strategy == 'round_robin' then
  start = 0
  local last = redis.call('GET', KEYS[3])
  for i = 1, n do
    if ARGV[7 + n + i] == last then start = i end
  end
end
for k = 0, n - 1 do
  local i = (start + k) % n + 1
  if free[i] then
    redis.call('ZADD', KEYS[3 + i], lease_until, lease)
    redis.call('ZREM', KEYS[1], waiter)
    redis.call('ZREM', KEYS[2], waiter)
    if strategy == 'round_robin' then
      redis.call('SET', KEYS[3], ARGV[7 + n + i])
    end
    return {arrival, i}
  end
end
return {arrival}
"""


def lease_key(number_id: int) -> str:
    return f"pv:lines:busy:{number_id}"


def group_key(connection_id: int, office_id: int | None) -> str:
    return f"{connection_id}:{office_id or 0}"


@dataclasses.dataclass(frozen=True)
class Lease:
    """One attempt's hold on one operator number."""

    key: str
    member: str
    group: str = ""


@dataclasses.dataclass(frozen=True)
class Taken:
    #: the lines taken, in their order (several with ring-all); none: every line is at its limit
    numbers: list[OperatorNumber]
    leases: list[Lease]
    waiting_since: float  #: when the callback first waited (now, when it did not)

    @property
    def number(self) -> OperatorNumber | None:
        return self.numbers[0] if self.numbers else None


class Lines:
    """Taking, renewing and giving back operator lines (Redis, shared by every worker)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    async def take(
        self,
        numbers: list[OperatorNumber],
        *,
        group: str,
        strategy: str,
        waiter: str,
        lease_id: str,
        hunt_start: int = 0,
    ) -> Taken:
        """A free line of ``numbers`` (in their order) for ``waiter``, counted, or none for now."""
        now = time.time()
        keys = [f"pv:lines:wait:{group}", f"pv:lines:seen:{group}", f"pv:lines:last:{group}"]
        keys += [lease_key(n.id) for n in numbers]
        args: list[Any] = [
            repr(now),
            repr(now + LEASE_SECONDS),
            lease_id,
            waiter,
            repr(now + WAITER_TTL),
            strategy if strategy in STRATEGIES else HUNT,
            hunt_start % len(numbers),
        ]
        args += [max(0, n.max_calls) for n in numbers] + [str(n.id) for n in numbers]
        arrival, *chosen = await self._take(keys=keys, args=args)
        arrived = float(arrival.decode() if isinstance(arrival, bytes) else arrival)
        taken = [numbers[int(i) - 1] for i in chosen]
        return Taken(taken, [Lease(lease_key(n.id), lease_id, group) for n in taken], arrived)

    async def leave(self, group: str, waiter: str) -> None:
        """Leave the waiting line (the callback was placed elsewhere, or gave up)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"pv:lines:wait:{group}", waiter)
            pipe.zrem(f"pv:lines:seen:{group}", waiter)
            await pipe.execute()

    async def renew(self, leases: list[Lease]) -> None:
        """Push the leases' end LEASE_SECONDS ahead (those that have not been given back), a chunk of
        :data:`RENEW_CHUNK` per script call: a worker with thousands of calls in flight renews them
        without holding its loop, or Redis, for more than a moment at a time."""
        until = repr(time.time() + LEASE_SECONDS)
        for start in range(0, len(leases), RENEW_CHUNK):
            chunk = leases[start : start + RENEW_CHUNK]
            await self._renew(keys=[lease.key for lease in chunk], args=[until, *(lease.member for lease in chunk)])

    async def give_back(self, *leases: Lease, also_delete: Sequence[str] = ()) -> None:
        """Give the leases back; ``also_delete``: keys of the caller's removed in the same round trip."""
        if not leases and not also_delete:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                pipe.zrem(lease.key, lease.member)
            if also_delete:
                pipe.delete(*also_delete)
            await pipe.execute()

    async def busy(self, number_id: int) -> int:
        """Calls on the number now (leases not run out)."""
        return int(await self.redis.zcount(lease_key(number_id), repr(time.time()), "+inf"))
