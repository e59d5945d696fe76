"""Site-script sizes: the loader and the app code as a browser receives them (gzip).

    .venv/bin/python bench/site_sizes.py

Starts the demo (every bundled site app on) and fetches what a phone-width page
view could fetch: the loader, the config, the runtime and each app's code, each
with ``Accept-Encoding: gzip`` (the bytes on the wire) and without. Budgets
(issue 19): loader <= 1 KB gzipped, the runtime and all apps' code <= 45 KB.
"""

from __future__ import annotations

import json
import re

from site_common import DemoServer

LOADER_BUDGET, CODE_BUDGET = 1024, 45 * 1024


def main() -> int:
    with DemoServer() as server:
        rows = []

        def fetch(label: str, path: str) -> bytes:
            _, _, raw = server.get(path)
            _, headers, wire = server.get(path, {"Accept-Encoding": "gzip"})
            assert headers.get("Content-Encoding") == "gzip", path
            rows.append((label, len(raw), len(wire)))
            return raw

        loader = fetch("loader (/inject)", f"/inject?token={server.token}")
        config = json.loads(fetch("config (/site/config)", f"/site/config?token={server.token}"))
        runtime = re.search(rb'"r":"([^"]+)"', loader).group(1).decode()
        fetch("runtime", runtime)
        for app in config["apps"]:
            fetch(f"app: {app['key']}", app["script"])
    print(f"{'file':28} {'bytes':>8} {'gzipped':>8}")
    for label, raw, wire in rows:
        print(f"{label:28} {raw:8d} {wire:8d}")
    code = sum(wire for label, _, wire in rows if label == "runtime" or label.startswith("app:"))
    loader_gz = rows[0][2]
    print(f"\nloader gzipped: {loader_gz} B (budget {LOADER_BUDGET} B)")
    apps = ", ".join(label.removeprefix("app: ") for label, _, _ in rows if label.startswith("app:"))
    print(f"runtime + every app ({apps}) gzipped, as served one by one: {code} B (budget {CODE_BUDGET} B)")
    return 0 if loader_gz <= LOADER_BUDGET and code <= CODE_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
