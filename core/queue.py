"""Putting jobs on the arq queue, many at a time.

arq's ``enqueue_job`` costs two round trips per job (WATCH, then MULTI). The
intake commits leads in batches, so it enqueues in batches too: one Lua script
does, for each job, exactly what ``enqueue_job`` does -- skip it when a job or
result with that id exists, else store the serialized job and add it to the
queue -- atomically and in one round trip. The stored format is arq's own
(``arq.jobs.serialize_job``), so arq's worker runs these jobs unchanged.

There are two queues (two arq sorted sets), each consumed by its own arq
worker in every worker process (``core/worker.py``): :data:`CALLBACKS_QUEUE`
for the attempts (and any plugin job), :data:`DELIVERIES_QUEUE` for the
integration pushes and notifications, which wait on outside services and so
must never stand between a lead and its first dial. A :class:`Job` names its
queue; one enqueue may mix queues and is still one round trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from arq.connections import ArqRedis
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from perezvon.core.models import PendingJob

#: KEYS: (queue, job key, result key) per job; ARGV: (job id, expiry ms, score, payload) per job, then
#: now (ms). One message per queue goes to its wake channel (:func:`wake_channel`), space-separated:
#: the ids of the jobs added due now, which its workers start at once rather than at their next poll,
#: and ``@<score>`` for the first of those added for later, which its workers poll for when it falls
#: due (core/worker.py).
_ENQUEUE_MANY = """
local added = {}
local due = {}
local later = {}
local queues = {}
local n = (#ARGV - 1) / 4
local now = tonumber(ARGV[#ARGV])
for i = 1, n do
  local queue, job_key, result_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('EXISTS', job_key) == 0 and redis.call('EXISTS', result_key) == 0 then
    local base = 4 * (i - 1)
    local score = tonumber(ARGV[base + 3])
    redis.call('PSETEX', job_key, ARGV[base + 2], ARGV[base + 4])
    redis.call('ZADD', queue, ARGV[base + 3], ARGV[base + 1])
    added[#added + 1] = ARGV[base + 1]
    if not due[queue] then
      due[queue] = {}
      queues[#queues + 1] = queue
    end
    if score <= now then
      table.insert(due[queue], ARGV[base + 1])
    elseif not later[queue] or score < later[queue] then
      later[queue] = score
    end
  end
end
for _, queue in ipairs(queues) do
  if later[queue] then
    table.insert(due[queue], string.format('@%d', later[queue]))
  end
  redis.call('PUBLISH', queue .. ':wake', table.concat(due[queue], ' '))
end
return added
"""

#: attempts (``core.place_attempt``) and plugin jobs: arq's default queue
CALLBACKS_QUEUE = default_queue_name
#: integration pushes and notifications (``core.deliver``, ``core.notify``)
DELIVERIES_QUEUE = default_queue_name + ":deliveries"
QUEUES = (CALLBACKS_QUEUE, DELIVERIES_QUEUE)
#: each deliveries worker's heartbeat for /healthz (the callbacks workers write ``pv:workers``)
DELIVERY_WORKERS_KEY = "pv:deliveries:workers"


def wake_channel(queue: str) -> str:
    """The Redis pub/sub channel on which an enqueue tells a queue's workers which jobs it has just
    added that are due now (their ids), and when the first it added for later falls due (``@<ms>``),
    space-separated. ``_ENQUEUE_MANY`` builds the same name in Lua."""
    return queue + ":wake"


@dataclasses.dataclass(frozen=True)
class Job:
    function: str
    args: tuple[Any, ...]
    job_id: str
    run_at: dt.datetime | None = None
    queue: str = CALLBACKS_QUEUE


def attempt_job(call_id: str, number: int, run_at: dt.datetime | None) -> Job:
    """The job that places attempt ``number`` of a call; its id makes it idempotent."""
    return Job("core.place_attempt", (call_id, number), f"attempt:{call_id}:{number}", run_at)


def delivery_job(integration: str, event: str, call_id: str, attempt_number: int | None = None) -> Job:
    """The job that pushes one event of one call (or of one of its attempts) to one integration."""
    if attempt_number is None:
        return Job(
            "core.deliver",
            (integration, event, call_id),
            f"deliver:{integration}:{event}:{call_id}",
            queue=DELIVERIES_QUEUE,
        )
    return Job(
        "core.deliver",
        (integration, event, call_id, attempt_number),
        f"deliver:{integration}:{event}:{call_id}:{attempt_number}",
        queue=DELIVERIES_QUEUE,
    )


def notify_job(notifier: str, kind: str, subject_id: str) -> Job:
    """The job that sends one notification through one notifier."""
    return Job(
        "core.notify", (notifier, kind, subject_id), f"notify:{notifier}:{kind}:{subject_id}", queue=DELIVERIES_QUEUE
    )


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._script = redis.register_script(_ENQUEUE_MANY)

    async def enqueue(self, jobs: list[Job]) -> int:
        """Enqueue jobs not already queued, each on its own queue; returns how many were added."""
        return len(await self.enqueue_new(jobs))

    async def enqueue_new(self, jobs: list[Job]) -> list[str]:
        """Enqueue jobs not already queued, each on its own queue; returns the ids of those added."""
        if not jobs:
            return []
        now_ms = int(time.time() * 1000)
        keys: list[str] = []
        argv: list[Any] = []
        for job in jobs:
            # an overdue job keeps its due time as its score: arq takes due jobs by score, so calls
            # the sweep queues late (held while their connection was off) go oldest first
            score = int(job.run_at.timestamp() * 1000) if job.run_at else now_ms
            payload = serialize_job(job.function, job.args, {}, None, now_ms)
            keys += [job.queue, job_key_prefix + job.job_id, result_key_prefix + job.job_id]
            argv += [job.job_id, max(score, now_ms) - now_ms + expires_extra_ms, score, payload]
        added = await self._script(keys=keys, args=[*argv, now_ms])
        return [job_id.decode() if isinstance(job_id, bytes) else str(job_id) for job_id in added]


#: the jobs kept in :class:`~perezvon.core.models.PendingJob` until they end; attempts need no such
#: record: their call's state and ``next_attempt_at`` say the same
REMEMBERED = ("core.deliver", "core.notify")


async def remember(jobs: list[Job], now: dt.datetime) -> None:
    """Record the pushes and notifications among ``jobs`` as pending, in the caller's transaction.

    Written with the change that calls for them (the lead, the attempt's end),
    so a job lost before or after it reached Redis is still known to the sweep.
    """
    rows = [PendingJob(**row) for row in pending_rows(jobs, now)]
    if rows:
        await PendingJob.bulk_create(rows, ignore_conflicts=True)


def pending_rows(jobs: list[Job], now: dt.datetime) -> list[dict[str, Any]]:
    """The :class:`PendingJob` rows of the pushes and notifications among ``jobs``, as plain dicts
    (the intake writes them with its own bulk insert, beside the leads)."""
    return [
        {
            "job_id": job.job_id,
            "function": job.function,
            "args": list(job.args),
            "queue": job.queue,
            "due_at": job.run_at or now,
        }
        for job in jobs
        if job.function in REMEMBERED
    ]


def job_of(row: PendingJob) -> Job:
    """The job a pending row stands for, due now (its id is the same, so queueing it twice is a no-op)."""
    return Job(row.function, tuple(row.args), row.job_id, None, row.queue)
