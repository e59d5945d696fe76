"""``perezvon smtp``: this plugin's SMTP intake alone (no web, no worker), added through ``perezvon_commands``."""

from __future__ import annotations

import argparse

from perezvon.api import CommandContext, ServerContext
from perezvon.plugins.siteforms.server import DEFAULT_PORT, SiteFormsSmtpServer

HELP = "the SMTP intake alone (site forms by e-mail)"


def smtp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=DEFAULT_PORT)


async def run_smtp(context: CommandContext) -> int:
    stop = context.stop_event()
    app = await context.start()
    assert app.intake is not None  # start() made it
    server = SiteFormsSmtpServer(
        ServerContext(intake=app.intake, host=context.args.host, ports={"smtp": context.args.smtp_port}),
        context.plugin_settings,
        context.settings,
    )
    try:
        await server.start()
        context.settle_heap()
        print(f"Perezvon SMTP intake is running: {server.describe()}. Ctrl-C stops it.", flush=True)
        await stop.wait()
    finally:
        await server.stop()
    return 0
