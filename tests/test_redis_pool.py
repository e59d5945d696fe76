"""The pools' check of a connection before a command (core/redis.py PromptConnectionPool), against
the real Redis of the tests: what redis-py's own check refuses is refused, without its loop turns."""

import asyncio

import pytest
from redis.asyncio import ConnectionPool, Redis

from perezvon.core.redis import PromptConnectionPool, _left_unread


async def wait_until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def no_retries(url: str) -> Redis:
    """A client that never sends a command twice: whatever works, worked at the first send."""
    return Redis(connection_pool=PromptConnectionPool.from_url(url), retry_on_error=[], retry=None)


async def test_the_app_and_the_workers_get_the_prompt_pool(perezvon_app):
    from perezvon.core.worker import build_workers

    assert type(perezvon_app.redis.connection_pool) is PromptConnectionPool
    workers = build_workers(perezvon_app, periodic_plugin_jobs=False)
    task = asyncio.create_task(workers.async_run())
    try:
        await wait_until(lambda: all(worker._pool is not None for worker in workers.all))
        assert [type(worker.pool.connection_pool) for worker in workers.all] == [PromptConnectionPool] * 2
    finally:
        for worker in workers.all:
            await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("pool_class", [PromptConnectionPool, ConnectionPool])
async def test_a_clean_connection_is_checked_without_waiting_for_the_loop(perezvon_app, pool_class):
    """The check of a clean, connected connection runs to its end without suspending once; redis-py's
    own suspends on its zero-timeout read (and the command waits two turns of the loop for it)."""
    pool = pool_class.from_url(perezvon_app.redis_url)
    try:
        connection = await pool.get_connection()
        check = pool.ensure_connection(connection)
        try:
            check.send(None)
        except StopIteration:
            suspended = False
        else:
            suspended = True
            check.close()
        assert suspended is (pool_class is ConnectionPool)
        await pool.release(connection)
    finally:
        await pool.disconnect()


async def test_a_connection_left_with_a_reply_unread_is_replaced_before_a_command(perezvon_app):
    redis = no_retries(perezvon_app.redis_url)
    try:
        await redis.set("pv:test:ready", "mine")
        pool = redis.connection_pool
        dirty = await pool.get_connection()
        await dirty.send_command("PING")  # its PONG is never read
        await wait_until(lambda: _left_unread(dirty))
        await pool.release(dirty)
        # the same connection is the one the pool hands out next: it must not answer with the old PONG
        assert await redis.get("pv:test:ready") == b"mine"
        assert not _left_unread(dirty)  # closed and made anew, not read past
        assert await redis.ping() is True
    finally:
        await redis.delete("pv:test:ready")
        await redis.aclose()


async def test_a_connection_the_server_closed_is_remade_before_a_command(perezvon_app):
    redis = no_retries(perezvon_app.redis_url)
    try:
        pool = redis.connection_pool
        connection = await pool.get_connection()
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        await pool.release(connection)
        assert await perezvon_app.redis.client_kill_filter(_id=client_id) == 1
        await wait_until(lambda: _left_unread(connection))  # the close has reached the connection
        # no retry is configured: the command succeeds only because the check remade the connection
        assert await redis.ping() is True
        assert await redis.client_id() != client_id
    finally:
        await redis.aclose()
