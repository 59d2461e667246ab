"""A tiny order service for the example (``python -m order_status.service --port 8089``):
``GET /orders/{number}`` answers JSON for the orders it knows, 404 for others."""

from __future__ import annotations

import argparse

from aiohttp import web

LOOKUPS = web.AppKey("lookups", list)
"""(order number, call id) of every request, for tests and curiosity."""

ORDERS = {
    "472918": {"status": "shipped", "shipped_on": "Monday", "carrier": "UPS", "eta": "Thursday"},
    "100200": {"status": "being packed"},
}


def create_app(orders: dict[str, dict[str, str]] | None = None) -> web.Application:
    table = ORDERS if orders is None else orders
    lookups: list[tuple[str, str]] = []

    async def get_order(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        lookups.append((number, request.headers.get("X-Call-Id", "")))
        order = table.get(number)
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(order)

    app = web.Application()
    app[LOOKUPS] = lookups
    app.router.add_get("/orders/{number}", get_order)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
