"""The admin dashboard: server-rendered pages at ``/dashboard`` for one organisation at a time.

``routes.dashboard_app(cp)`` is the aiohttp sub-application mounted by ``control_plane.app``.
``sessions``: sign-in sessions (in-process or Redis); ``auth``: cookies, CSRF and the gate
every page passes; ``views``: the pages; ``live``: the live-calls event stream;
``waterfall``: a turn's latency stages as bars.
"""
