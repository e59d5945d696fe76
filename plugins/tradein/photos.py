"""The trade-in form's photos (docs/tradein.md#photos): taken from the site with its token, checked
by their first bytes, kept under ``<data dir>/tradein/<connection id>/``, served to admin users only.

``POST /p/tradein/photos`` takes one multipart request with the site token (``token``) and up to
:data:`MAX_PHOTOS` files (``photo``); it refuses the whole request -- storing nothing -- with 413
(a photo over :data:`MAX_BYTES`, or a body over the sum), 415 (not JPEG, PNG or WebP by its bytes),
422 (no photo, more than five, an unknown token or the app off), and answers ``{"photos": [ids]}``,
the ids the lead's ``extra.photos`` then carries. ``GET /p/tradein/photos/<connection>/<id>``
serves one to a signed-in admin user who may view the connection (else 404).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from perezvon.api import Connection, PluginKind, admin_may_view, plugin_is_on

KEY = "tradein"
MAX_PHOTOS = 5
MAX_BYTES = 5 * 1024 * 1024
#: the multipart envelope around the photos: the token, the boundaries, the part headers
ENVELOPE_BYTES = 64 * 1024
MAX_BODY = MAX_PHOTOS * MAX_BYTES + ENVELOPE_BYTES
TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PHOTO_ID = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp)$")
CORS = {"Access-Control-Allow-Origin": "*"}


def kind_of(head: bytes) -> str | None:
    """The picture type by its first bytes (the name and the declared type are not trusted)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def folder(data_dir: Path, connection_id: int) -> Path:
    return data_dir / KEY / str(int(connection_id))


def photo_path(data_dir: Path, connection_id: int, photo_id: str) -> Path | None:
    """Where a stored photo is, or None for an id that is not one of ours."""
    if not isinstance(photo_id, str) or not PHOTO_ID.match(photo_id):
        return None
    path = folder(data_dir, connection_id) / photo_id
    return path if path.is_file() else None


def refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": {"photo": [message]}}, status_code=status, headers=CORS)


async def _capped_body(request: Request) -> bytes | None:
    """The body, or None as soon as it is longer than :data:`MAX_BODY` (nothing kept of it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def upload(request: Request) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return refuse(415, "Send the photos as multipart/form-data.")
    body = await _capped_body(request)
    if body is None:
        return refuse(413, f"At most {MAX_PHOTOS} photos of {MAX_BYTES // 1048576} MB each.")

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_PHOTOS * 4, max_fields=20)
    except Exception:
        return refuse(422, "The form could not be read.")
    try:
        token = form.get("token")
        connection = await Connection.get_or_none(token=token) if isinstance(token, str) and token else None
        if connection is None or not await plugin_is_on(connection, PluginKind.APPLICATION, KEY):
            return refuse(422, "Unknown site token.")
        files = [f for f in form.getlist("photo") if isinstance(f, UploadFile)]
        if not files:
            return refuse(422, "No photo.")
        if len(files) > MAX_PHOTOS:
            return refuse(422, f"At most {MAX_PHOTOS} photos.")
        checked = []
        for f in files:
            data = await f.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                return refuse(413, f"A photo may be at most {MAX_BYTES // 1048576} MB.")
            kind = kind_of(data[:16])
            if kind is None:
                return refuse(415, "Only JPEG, PNG or WebP photos.")
            checked.append((kind, data))
        # everything is checked: only now is anything written
        target = folder(request.app.state.perezvon.settings.data_dir, connection.id)
        target.mkdir(parents=True, exist_ok=True)
        ids = []
        for kind, data in checked:
            photo_id = f"{uuid.uuid4().hex}.{kind}"
            partial = target / f".{photo_id}.part"
            partial.write_bytes(data)
            os.replace(partial, target / photo_id)  # a photo is there whole or not at all
            ids.append(photo_id)
        return JSONResponse({"photos": ids}, status_code=201, headers=CORS)
    finally:
        await form.close()


async def show(request: Request) -> Response:
    connection_id, photo_id = request.path_params["connection_id"], request.path_params["photo_id"]
    path = photo_path(request.app.state.perezvon.settings.data_dir, connection_id, photo_id)
    # the same answer for "no such photo" and "not yours": nothing to learn by guessing
    if path is None or not await admin_may_view(request, connection_id):
        return Response("Not found.", status_code=404, media_type="text/plain")
    return FileResponse(
        path,
        media_type=TYPES[path.suffix[1:]],
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": "POST"})


ROUTES = [
    Route("/photos", upload, methods=["POST"]),
    Route("/photos", preflight, methods=["OPTIONS"]),
    Route("/photos/{connection_id:int}/{photo_id}", show, methods=["GET"]),
]
