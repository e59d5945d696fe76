"""A plugin's ``static/`` folder, served by convention (docs/plugins.md, "Package shape").

Every enabled plugin whose package holds a ``static/`` folder has it served at
``/plugins/<plugin>/static/<file>`` with no registration code in the plugin;
the admin's editors load their scripts from there.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles

#: where each plugin's static/ folder is served: /plugins/<plugin>/static/<file>
PLUGIN_STATIC = "/plugins"


class PluginStaticFiles(StaticFiles):
    """A plugin's static files: cached for five minutes, then revalidated by their ETag."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "public, max-age=300")
        return response


def plugin_static_url(plugin: str, filename: str) -> str:
    return f"{PLUGIN_STATIC}/{plugin}/static/{filename}"
