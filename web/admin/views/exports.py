"""Export runs: started from the Calls table, written in the background, progress polled, then downloaded.

The run's state is in Redis (so any web process can report it) and the file in
``<data dir>/exports``; only the user who started a run may see or download it.
Files are deleted after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from pathlib import Path

from marshmallow import ValidationError
from starlette.responses import FileResponse, JSONResponse, Response

from perezvon.core.call_filters import parse_filters
from perezvon.web.admin.export import Exporter
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import translate, translations
from perezvon.web.admin.views.calls import app_titles

log = logging.getLogger("perezvon.admin.export")
KEEP_SECONDS = 24 * 3600
#: a running export says it is alive this often; one silent for STALE_SECONDS died with its web process
#: (a restart: the state is kept in Redis, the task that wrote it is gone) and is reported as stopped
BEAT_SECONDS = 20
STALE_SECONDS = 120
INTERRUPTED = "interrupted"
_running: set[asyncio.Task] = set()


def _key(export_id: str) -> str:
    return f"pz:admin:export:{export_id}"


def export_dir(perezvon) -> Path:
    path = perezvon.settings.data_dir / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _state(ctx: Ctx) -> dict | None:
    export_id = ctx.request.path_params["export_id"]
    if not export_id.isalnum():
        return None
    raw = await ctx.perezvon.redis.get(_key(export_id))
    state = json.loads(raw) if raw else None
    if state is None or state["user_id"] != ctx.user.id:
        return None
    if state["state"] == "running" and time.time() - state.get("beat", 0) > STALE_SECONDS:
        state.update(state="failed", error=INTERRUPTED)
    return state


def _clean_old(directory: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for file in directory.glob("*.xlsx"):
        if file.stat().st_mtime < cutoff:
            file.unlink(missing_ok=True)


async def export_start(ctx: Ctx) -> Response:
    params = ctx.form
    try:
        filters = parse_filters(params)
    except ValidationError:
        ctx.flash(ctx._("Check the filters."), "error")
        return ctx.redirect("/calls")
    export_id = secrets.token_hex(12)
    directory = export_dir(ctx.perezvon)
    _clean_old(directory)
    path = directory / f"{export_id}.xlsx"
    redis = ctx.perezvon.redis
    state = {"user_id": ctx.user.id, "state": "running", "done": 0, "total": None, "error": "", "beat": time.time()}
    await redis.set(_key(export_id), json.dumps(state), ex=KEEP_SECONDS)

    async def save() -> None:
        state["beat"] = time.time()
        await redis.set(_key(export_id), json.dumps(state), ex=KEEP_SECONDS)

    async def progress(done: int, total: int) -> None:
        state.update(done=done, total=total)
        await save()

    async def beat() -> None:  # alive while counting and saving too, when no progress is reported
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            with contextlib.suppress(Exception):  # a missed beat is made up by the next one
                await save()

    async def run() -> None:
        beating = asyncio.create_task(beat())
        try:
            access = ctx.access
            await Exporter(ctx.locale, app_titles(ctx)).write(
                filters,
                access.connection_ids_to_search(filters),
                path,
                progress,
                contacts=None if access.is_staff else set(access.contact_connections),
            )
            state["state"] = "ready"
        except Exception as exc:  # reported to the user's progress page; the details go to the log
            log.exception("export %s failed", export_id)
            state.update(state="failed", error=type(exc).__name__)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
        await save()

    task = asyncio.create_task(run(), name=f"export-{export_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return ctx.redirect(f"/exports/{export_id}")


def progress_text(state: dict, locale: str) -> str:
    """The one sentence saying where a run is, in the user's language. The page and the status
    poll both show it, so what the script writes is what the page would say when reloaded."""
    if state["state"] == "ready":
        return translations(locale).ngettext("Ready: %(n)s call.", "Ready: %(n)s calls.", state["done"]) % {
            "n": state["done"]
        }
    if state["state"] == "failed" and state["error"] == INTERRUPTED:
        return translate("The export stopped: the server was restarted. Start it again.", locale)
    if state["state"] == "failed":
        return translate("The export failed. Try again or narrow the filters.", locale)
    if state["total"] is None:  # the calls are still being counted
        return translate("Counting the calls…", locale)
    return translations(locale).ngettext(
        "Written %(done)s of %(total)s call…", "Written %(done)s of %(total)s calls…", state["total"]
    ) % {"done": state["done"], "total": state["total"]}


async def export_page(ctx: Ctx) -> Response:
    state = await _state(ctx)
    if state is None:
        return await ctx.error(404, "There is no such export.")
    return await ctx.render(
        "admin/export.html",
        export_id=ctx.request.path_params["export_id"],
        state=state,
        text=progress_text(state, ctx.locale),
    )


async def export_status(ctx: Ctx) -> Response:
    state = await _state(ctx)
    if state is None:
        return JSONResponse({"errors": {"_schema": ["There is no such export."]}}, status_code=404)
    answer = {k: state[k] for k in ("state", "done", "total", "error")}
    answer["text"] = progress_text(state, ctx.locale)
    return JSONResponse(answer)


async def export_download(ctx: Ctx) -> Response:
    state = await _state(ctx)
    export_id = ctx.request.path_params["export_id"]
    path = export_dir(ctx.perezvon) / f"{export_id}.xlsx"
    if state is None or state["state"] != "ready" or not path.is_file():
        return await ctx.error(404, "There is no such export.")
    return FileResponse(
        path,
        filename=f"perezvon-calls-{time.strftime('%Y%m%d-%H%M')}.xlsx",
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
