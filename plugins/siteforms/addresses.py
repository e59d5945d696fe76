"""Technical addresses: made once per connection, random, never changed."""

from __future__ import annotations

import secrets

from tortoise.exceptions import IntegrityError

from perezvon.api import Connection, DemoStep, PluginKind, enable_plugin
from perezvon.plugins.siteforms.app import KEY
from perezvon.plugins.siteforms.models import TechnicalAddress


def new_local_part() -> str:
    """128 random bits in hex: an address nobody can guess (a guessed one would let spam in)."""
    return secrets.token_hex(16)


async def technical_address(connection_id: int) -> TechnicalAddress:
    """The connection's technical address, made on first use; safe to call concurrently."""
    for _ in range(3):
        existing = await TechnicalAddress.get_or_none(connection_id=connection_id)
        if existing is not None:
            return existing
        try:
            return await TechnicalAddress.create(connection_id=connection_id, local_part=new_local_part())
        except IntegrityError:  # another process made it first (or, never in practice, the same random part)
            continue
    raise RuntimeError(f"could not make a technical address for connection {connection_id}")


def email_of(address: TechnicalAddress, domain: str) -> str:
    return f"{address.local_part}@{domain}"


async def switch_on(connection: Connection, domain: str) -> str:
    """Switch site forms on for a connection; returns its technical e-mail address."""
    await enable_plugin(connection, PluginKind.APPLICATION, KEY)
    return email_of(await technical_address(connection.id), domain)


def demo_step(domain: str) -> DemoStep:
    """``perezvon demo`` prints the demo connection's technical address (the core switches the app on)."""

    async def technical_email(connection: Connection) -> dict[str, str]:
        return {"technical_email": email_of(await technical_address(connection.id), domain)}

    return technical_email
