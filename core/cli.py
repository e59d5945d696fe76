"""The ``perezvon`` command (README.md, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perezvon.core.commands import Command, check_clashes, run_command, settle_heap, stop_on_signals
from perezvon.core.registry import PluginError
from perezvon.core.settings import Settings, plugins_file

if TYPE_CHECKING:  # imported where used: `perezvon --help` stays quick
    import uvicorn

    from perezvon.core.app import Perezvon

log = logging.getLogger("perezvon")

#: calls in progress get 10 s to end (perezvon.core.callbacks); the rest of shutdown is quick
SHUTDOWN_SECONDS = 15


#: a server listening on every address is reached, from the machine itself, at localhost
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def url_of(host: str, port: int) -> str:
    """The URL a browser on this machine reaches ``host:port`` at (0.0.0.0 and :: → localhost)."""
    shown = "localhost" if host in _ANY_ADDRESS else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address
    return f"http://{shown}:{port}"


def public_url_of(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[str | None, str]:
    """The public URL a command runs with and where it comes from: ``--public-url``, else
    PEREZVON_PUBLIC_URL, else -- for a command that listens (``serve``, ``web``) or is told the
    port (``demo --port``) -- its own ``--host``/``--port``; None leaves the default."""
    environment = os.environ if env is None else env
    if getattr(args, "public_url", None):
        return args.public_url, "--public-url"
    if environment.get("PEREZVON_PUBLIC_URL"):
        return environment["PEREZVON_PUBLIC_URL"], "PEREZVON_PUBLIC_URL"
    port = getattr(args, "port", None)
    if port is None:
        return None, "the default"
    return url_of(getattr(args, "host", None) or "127.0.0.1", port), "--host/--port"


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
        redis_url=getattr(args, "redis_url", None),
        plugins_path=getattr(args, "plugins", None),
        public_url=public_url_of(args)[0],
    )


async def _say_where(app: Perezvon, args: argparse.Namespace) -> None:
    """Which URL the site script and its pages use, and why: a wrong one breaks every site silently."""
    from perezvon.core.demo import demo_site_url

    public, source = app.settings.public_url, public_url_of(args)[1]
    print(
        f"The site script is served as {public}/inject?token=<site token> (the public URL, from {source}; "
        "set --public-url or PEREZVON_PUBLIC_URL to the address visitors' browsers reach).",
        flush=True,
    )
    try:
        demo = await demo_site_url(app)
    except Exception as exc:
        # Only a hint: nothing may stop the process here, whatever the failure
        # (in CI, PostgreSQL stopping at this moment raised an asyncpg error
        # that core/outages.py did not know yet): it is logged, never raised.
        logging.getLogger("perezvon.cli").warning(
            "the demo site's address could not be read: %s: %s", type(exc).__name__, exc
        )
        return
    if demo:
        print(f"Demo site: {demo}", flush=True)


def _app(args: argparse.Namespace) -> Perezvon:
    from perezvon.core.app import Perezvon

    return Perezvon(_settings(args))


def _uvicorn_server(asgi_app: Any, host: str, port: int) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        # we own SIGINT/SIGTERM: one handler stops web, worker, SMTP and Redis in order
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(
        uvicorn.Config(
            asgi_app, host=host, port=port, lifespan="on", log_level="warning", proxy_headers=True, access_log=False
        )
    )


async def _start(app: Perezvon, stop: asyncio.Event, *, migrate: bool = False) -> bool:
    """Start ``app``, waiting for Redis and the database if they do not answer yet; False if stopped first."""
    starting = asyncio.create_task(app.start(migrate=migrate, wait=True), name="start")
    await _run_until_stopped([starting], stop)
    if starting.done():
        return True
    starting.cancel()  # Ctrl-C while waiting for a service: start() closes what it opened
    await asyncio.gather(starting, return_exceptions=True)
    return False


async def _run_until_stopped(tasks: list[asyncio.Task[Any]], stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper:
            error = task.exception()
            if error is not None:
                raise error


class WebDidNotStart(Exception):
    """uvicorn could not serve (a port taken, an address not ours); it said why in the log."""


async def _serve_web(web: uvicorn.Server, host: str, port: int) -> None:
    """``web.serve()``, except that a failed start is an error of ours, not the process exiting.

    uvicorn answers a port it cannot bind with ``sys.exit(1)``. Raised inside a task,
    that SystemExit leaves the event loop at once, skipping our shutdown: the
    database's thread was never closed and ``perezvon serve`` hung until killed.
    """
    try:
        await web.serve()
    except SystemExit as exc:
        raise WebDidNotStart(f"the web server could not start on {host}:{port} (see the error above)") from exc


async def _bounded_shutdown(app: Perezvon, shut_down: Coroutine[Any, Any, None]) -> bool:
    """Run ``shut_down`` for at most :data:`SHUTDOWN_SECONDS`; False when it had to be cut short.

    Never hang on Ctrl-C: past the limit, what is still running is named in the
    log (so a stuck stop can be traced), the embedded Redis we own is stopped,
    and the process says so and exits.
    """
    try:
        await asyncio.wait_for(shut_down, SHUTDOWN_SECONDS)
    except TimeoutError:
        still_running = sorted(
            f"{task.get_name()}: {task.get_coro()!r}"
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task() and not task.done()
        )
        log.error(
            "shutdown did not finish in %s s; stopping the embedded Redis and exiting. Still running: %s",
            SHUTDOWN_SECONDS,
            "; ".join(still_running) or "nothing",
        )
        if app.embedded_redis is not None:
            app.embedded_redis.stop()
        print("Perezvon stopped (forced).", flush=True)
        return False
    return True


async def cmd_serve(args: argparse.Namespace) -> int:
    from perezvon.core.registry import ServerContext
    from perezvon.core.worker import build_workers
    from perezvon.web.app import create_app

    app = _app(args)
    stop = asyncio.Event()
    stop_on_signals(stop)
    if not await _start(app, stop, migrate=True):
        return 0
    assert app.intake is not None  # start() made it
    servers, workers, web_task, worker_task = [], None, None, None
    try:
        context = ServerContext(intake=app.intake, host=args.host, ports={"web": args.port, "smtp": args.smtp_port})
        servers = app.host.servers(context)
        for server in servers:
            await server.start()
        web = _uvicorn_server(create_app(app, manage_lifecycle=False), args.host, args.port)
        workers = build_workers(app)  # callbacks and deliveries, each on its own queue
        web_task = asyncio.create_task(_serve_web(web, args.host, args.port), name="web")
        worker_task = asyncio.create_task(workers.async_run(), name="worker")
        settle_heap()
        while not web.started and not web_task.done():  # noqa: ASYNC110 -- uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        if web.started:  # else the web task's error is raised just below
            print(
                f"Perezvon is running: {app.settings.public_url}  (web on {args.host}:{args.port}"
                + "".join(f", {s.describe()}" for s in servers)
                + "). Ctrl-C stops it.",
                flush=True,
            )
            await _say_where(app, args)
        await _run_until_stopped([web_task, worker_task], stop)
    finally:

        async def shut_down() -> None:
            if web_task is not None:
                web.should_exit = True
                await asyncio.gather(web_task, return_exceptions=True)
            if workers is not None:
                await workers.close()
            if worker_task is not None:
                worker_task.cancel()
                await asyncio.gather(worker_task, return_exceptions=True)
            for server in reversed(servers):
                await server.stop()
            await app.stop()

        stopped_in_time = await _bounded_shutdown(app, shut_down())
    if stopped_in_time:
        print("Perezvon stopped.", flush=True)
    return 0 if stopped_in_time else 1


async def cmd_web(args: argparse.Namespace) -> int:
    from perezvon.web.app import create_app

    app = _app(args)
    stop = asyncio.Event()
    stop_on_signals(stop)
    if not await _start(app, stop):
        return 0
    task: asyncio.Task[Any] | None = None
    try:
        web = _uvicorn_server(create_app(app, manage_lifecycle=False), args.host, args.port)
        settle_heap()
        task = asyncio.create_task(_serve_web(web, args.host, args.port), name="web")
        while not web.started and not task.done():  # noqa: ASYNC110 -- uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        if web.started:  # else the task's error is raised just below
            print(f"Perezvon web is running: {app.settings.public_url}  (on {args.host}:{args.port}).", flush=True)
            await _say_where(app, args)
        await _run_until_stopped([task], stop)
    finally:

        async def shut_down() -> None:
            if task is not None:
                web.should_exit = True
                await asyncio.gather(task, return_exceptions=True)
            await app.stop()

        stopped_in_time = await _bounded_shutdown(app, shut_down())
    return 0 if stopped_in_time else 1


async def cmd_worker(args: argparse.Namespace) -> int:
    from perezvon.core.worker import QUEUE_NAMES, build_workers

    app = _app(args)
    stop = asyncio.Event()
    stop_on_signals(stop)
    if not await _start(app, stop):
        return 0
    workers, task = None, None
    try:
        queues = [args.queue] if args.queue else list(QUEUE_NAMES)
        workers = build_workers(app, queues=queues)  # callbacks and deliveries, each on its own queue
        task = asyncio.create_task(workers.async_run(), name="worker")
        settle_heap()  # a worker holds a thousand calls' objects: full collections of them stall its dials
        only = f" (the {args.queue} queue only)" if args.queue else ""
        print(f"Perezvon worker is running{only}. Ctrl-C stops it.", flush=True)
        await _run_until_stopped([task], stop)
    finally:

        async def shut_down() -> None:
            if workers is not None:
                await workers.close()
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await app.stop()

        stopped_in_time = await _bounded_shutdown(app, shut_down())
    return 0 if stopped_in_time else 1


async def cmd_migrate(args: argparse.Namespace) -> int:
    from perezvon.core import db

    app = _app(args)
    await db.migrate(app.db_config)
    await db.close()
    print("Database schema is up to date.")
    return 0


#: the demo keys the text output lays out itself; plugins' extras are listed after them
_DEMO_SHOWN = {"staff_phone", "staff_password", "admin_url", "site_token", "lead_url", "project_id", "connection_id"}


async def cmd_demo(args: argparse.Namespace) -> int:
    from perezvon.core.demo import seed_demo

    app = _app(args)
    await app.start(migrate=True)
    try:
        demo = await seed_demo(app)
    finally:
        await app.stop()
    if args.json:
        print(json.dumps(demo, ensure_ascii=False))
    else:
        print(
            "Демо готово / the demo is ready\n"
            f"  admin:      {demo['admin_url']}\n"
            f"  login:      {demo['staff_phone']}  password: {demo['staff_password']}\n"
            f"  site token: {demo['site_token']}\n"
            f"  try a lead: curl -s -X POST {demo['lead_url']} -H 'Content-Type: application/json' "
            f'-d \'{{"token": "{demo["site_token"]}", "phone": "+7 912 345-67-89", "consent": true}}\'\n'
            + "".join(f"  {key}: {value}\n" for key, value in demo.items() if key not in _DEMO_SHOWN)
            + "Start it with: perezvon serve"
            + (f" --host {args.host} --port {args.port}" if args.port is not None else "")
        )
    return 0


async def cmd_plugins(args: argparse.Namespace) -> int:
    from perezvon.core.plugins import PluginHost

    settings = _settings(args)
    host = PluginHost.from_file(settings.plugins_path, core_settings=settings)
    rows: list[dict[str, Any]] = [
        {
            "name": i.name,
            "kinds": i.kinds,
            "version": i.version,
            "origin": i.origin,
            "enabled": i.enabled,
            "hooks": i.hooks,
        }
        for i in host.infos.values()
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    header = ("NAME", "KINDS", "VERSION", "ORIGIN", "ENABLED")
    table = [header] + [
        (r["name"], ", ".join(r["kinds"]) or "-", r["version"], r["origin"], "yes" if r["enabled"] else "no")
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


async def cmd_createuser(args: argparse.Namespace) -> int:
    from perezvon.core.auth import create_user

    password = args.password or os.environ.get("PEREZVON_PASSWORD")
    if password is None and sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            print("perezvon: error: the passwords differ", file=sys.stderr)
            return 2
    app = _app(args)
    from perezvon.core import db

    await db.connect(app.db_config)
    try:
        user = await create_user(
            phone=args.phone,
            password=password,
            email=args.email,
            first_name=args.first_name,
            last_name=args.last_name,
            position=args.position,
            is_staff=args.staff,
        )
    except ValueError as exc:  # InvalidPhone is one too
        print(f"perezvon: error: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    kind = "staff user" if user.is_staff else "user"
    state = "" if password else " (no password yet: it is set through the activation link)"
    print(f"Created {kind} {user.phone} (id {user.id}){state}")
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def cmd_new_plugin(args: argparse.Namespace) -> int:
    from perezvon.core.scaffold import ScaffoldError, names, scaffold

    try:
        target = scaffold(args.name, Path(args.dir))
    except ScaffoldError as exc:
        print(f"perezvon: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Created {target}\n  pip install -e {target}\n  then in plugins.toml:\n"
        f'    [plugins.{args.name}]\n    enabled = true\n    endpoint = "https://crm.example.com/api/leads"\n'
        f"  tests: cd {target} && python -m pytest tests   (package {names(args.name)['package']})"
    )
    return 0


def plugin_commands(argv: list[str]) -> list[Command]:
    """The sub-commands the enabled plugins add, found before the arguments are parsed.

    Only ``--plugins`` (or PEREZVON_PLUGINS) is read here. Without a plugins file
    there are no plugin commands: the built-in ones still work (``new-plugin``
    needs none) or report the missing file themselves.
    """
    from perezvon.core.plugins import PluginHost, read_plugins_toml

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugins")
    path = plugins_file(early.parse_known_args(argv)[0].plugins).resolve()
    if not path.is_file():
        return []
    host = PluginHost(read_plugins_toml(path))
    host.load_entry_points()
    return host.commands()


def build_parser(commands: Sequence[Command] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perezvon", description="Perezvon: website visitors become phone calls.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="PEREZVON_DATA_DIR (default ./var)")
    common.add_argument("--database-url", help="PEREZVON_DATABASE_URL (default sqlite in the data dir)")
    common.add_argument("--redis-url", help="PEREZVON_REDIS_URL (default: an embedded Redis)")
    common.add_argument("--plugins", help="PEREZVON_PLUGINS (default ./plugins.toml)")
    common.add_argument(
        "--public-url",
        help="PEREZVON_PUBLIC_URL: the address browsers reach this server at; the site script and links use it "
        "(default: serve/web's own --host/--port, else http://127.0.0.1:8000)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="web, worker, lead-source servers and Redis in one process")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--smtp-port", type=int, default=2525)
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("web", parents=[common], help="the web app alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(handler=cmd_web)

    p = sub.add_parser("worker", parents=[common], help="the worker alone")
    p.add_argument(
        "--queue",
        choices=("callbacks", "deliveries"),
        help="take jobs from this queue only (default: both): the calls and the pushes in processes of "
        "their own, to scale them apart and run the pushes under `nice` (docs/deploy.md)",
    )
    p.set_defaults(handler=cmd_worker)
    sub.add_parser("migrate", parents=[common], help="create or upgrade the database schema").set_defaults(
        handler=cmd_migrate
    )

    p = sub.add_parser("demo", parents=[common], help="seed a demo company, site and staff user")
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.add_argument("--host", default="127.0.0.1", help="with --port: the URLs printed are those of serve --host")
    p.add_argument("--port", type=int, help="print the URLs for `perezvon serve --port PORT` (default 8000)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("plugins", parents=[common], help="list plugins")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("createuser", parents=[common], help="create a user")
    p.add_argument("--phone", required=True, help="the login phone")
    p.add_argument("--email")
    p.add_argument("--first-name", default="")
    p.add_argument("--last-name", default="")
    p.add_argument("--position", default="")
    p.add_argument("--staff", action="store_true", help="a staff user (administers everything)")
    p.add_argument("--password", help="else PEREZVON_PASSWORD, else asked for on a terminal")
    p.set_defaults(handler=cmd_createuser)

    p = sub.add_parser("new-plugin", help="scaffold a pip-installable integration plugin package")
    p.add_argument("name", help="the plugin's name, e.g. my_crm")
    p.add_argument("--dir", default=".", help="where to create perezvon-<name>/ (default: here)")
    p.set_defaults(handler=cmd_new_plugin)

    for command in check_clashes(list(commands), set(sub.choices)).values():
        p = sub.add_parser(command.name, parents=[common], help=f"{command.help} [plugin {command.plugin}]".lstrip())
        if command.arguments is not None:
            command.arguments(p)
        p.set_defaults(handler=_plugin_handler(command))
    return parser


def _plugin_handler(command: Command) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def handler(args: argparse.Namespace) -> int:
        return await run_command(command, args, _settings(args))

    return handler


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(plugin_commands(argv))
    except PluginError as exc:  # a plugin that fails to import, or a command name taken twice
        print(f"perezvon: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("PEREZVON_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("arq.worker", "tortoise", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code: int = runner.run(args.handler(args))
            return code
    except PluginError as exc:
        print(f"perezvon: error: {exc}", file=sys.stderr)
        return 2
    except WebDidNotStart as exc:  # what had started was stopped again on the way out
        print(f"perezvon: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
