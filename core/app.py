"""The running Perezvon: settings, plugins, database, Redis and the intake.

One object per process, built explicitly (no module-level singletons); the
web app, the worker and the CLI all start and stop it the same way.
"""

from __future__ import annotations

import logging

from arq.connections import ArqRedis

from perezvon.core import db, outgoing
from perezvon.core.callbacks import CallbackEngine
from perezvon.core.dials_first import DialsFirst
from perezvon.core.inbound import InboundCalls
from perezvon.core.intake import LeadIntake, SiteDirectory
from perezvon.core.integrations import close_clients
from perezvon.core.outages import until_connected
from perezvon.core.plugins import PluginHost
from perezvon.core.redis import EmbeddedRedis, arq_pool
from perezvon.core.settings import Settings

log = logging.getLogger("perezvon")


class Perezvon:
    def __init__(self, settings: Settings, host: PluginHost | None = None) -> None:
        self.settings = settings
        self.host = host or PluginHost.from_file(settings.plugins_path, core_settings=settings)
        self.db_config = db.tortoise_config(settings.database_url, self.host.model_modules())
        self.embedded_redis: EmbeddedRedis | None = None
        self.redis: ArqRedis | None = None
        self.intake: LeadIntake | None = None
        self.engine: CallbackEngine | None = None
        #: callbacks being placed in this process hold back its pushes (core/dials_first.py)
        self.dials_first = DialsFirst()
        self.started = False

    @property
    def redis_url(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        if self.embedded_redis is None:
            self.embedded_redis = EmbeddedRedis(self.settings.data_dir)
        return self.embedded_redis.url

    async def start(self, *, migrate: bool = False, wait: bool = False) -> None:
        """Connect Redis and the database (``migrate``: upgrade the schema first).

        With ``wait`` (the long-running commands), a Redis or database that does
        not answer yet is waited for with back-off rather than ending the process.
        """
        if self.started:
            return
        # the process's one allow-list of the outgoing guard; a bad entry stops the start with its name
        outgoing.configure(self.settings.outgoing_allow)
        try:
            if not self.settings.redis_url:
                self.redis_url  # noqa: B018 - creates the embedded server object
                assert self.embedded_redis is not None
                self.embedded_redis.start()
            self.redis = await arq_pool(self.redis_url, wait=wait)
            if migrate:
                await (until_connected("The database", self._migrate) if wait else self._migrate())
            await (until_connected("The database", self._connect_db) if wait else self._connect_db())
            self.intake = LeadIntake(
                redis=self.redis,
                registry=self.host.registry,
                sites=SiteDirectory(self.settings.connection_cache_seconds),
                leads_per_ip_per_minute=self.settings.leads_per_ip_per_minute,
                duplicate_window_seconds=self.settings.duplicate_window_seconds,
            )
        except BaseException:
            await self.stop()
            raise
        self.started = True

    async def _migrate(self) -> None:
        await db.migrate(self.db_config)

    async def _connect_db(self) -> None:
        try:
            await db.connect(self.db_config)
        except BaseException:  # a half-made connection would be reused by the next try
            await db.close()
            raise

    async def start_engine(self) -> CallbackEngine:
        """The worker side: connect the telephony backend and the callback engine."""
        backend = self.host.telephony_backend()
        assert self.redis is not None, "start() connects Redis first"
        # the PBX's inbound calls: the client called in, missed calls become leads (core/inbound.py)
        backend.inbound = InboundCalls(registry=self.host.registry, intake=self.intake, redis=self.redis)
        await backend.start()
        self.engine = CallbackEngine(
            backend=backend,
            registry=self.host.registry,
            redis=self.redis,
            settings=self.settings,
            dials_first=self.dials_first,
        )
        self.engine.start()
        return self.engine

    async def stop_engine(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            await self.engine.backend.stop()
            self.engine = None

    async def stop(self) -> None:
        await self.stop_engine()
        await close_clients()  # integrations' HTTP pools (a test may push without a worker)
        if self.intake is not None:
            await self.intake.close()
            self.intake = None
        if self.redis is not None:
            await self.redis.aclose(close_connection_pool=True)
            self.redis = None
        await db.close()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        self.started = False
