"""The admin web UI (docs/admin.md): server-rendered Starlette + Jinja2 pages.

``perezvon.web.admin.routes.admin_routes(perezvon)`` gives the routes ``perezvon.web.app`` mounts;
every page goes through :func:`perezvon.web.admin.framework.page`, which authenticates,
checks the grant level (``perezvon.core.access``), checks CSRF and adds security headers.
"""
