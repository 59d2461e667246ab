"""The ``order_status`` tool: the model calls it with the number the caller gave.

The order service's address comes from ``ORDER_SERVICE_URL`` (default
``http://127.0.0.1:8089``). The request carries the call's id, so the shop's logs can tie
the lookup to the call.
"""

from __future__ import annotations

import os

import aiohttp

from callagent.tools import ToolContext, ToolError, function_tool

DEFAULT_URL = "http://127.0.0.1:8089"


@function_tool(timeout_s=3)
async def order_status(order_number: str, context: ToolContext) -> str:
    """Look up where a customer's order is: shipped or not, the carrier and when it arrives.

    Args:
        order_number: The order number the caller gave, digits only.
    """
    digits = "".join(ch for ch in order_number if ch.isdigit())
    if not digits:
        raise ToolError("an order number has digits; ask the caller for it again")
    base = os.environ.get("ORDER_SERVICE_URL", DEFAULT_URL).rstrip("/")
    headers = {"X-Call-Id": context.call_id or ""}
    async with aiohttp.ClientSession() as session, session.get(f"{base}/orders/{digits}", headers=headers) as response:
        if response.status == 404:
            raise ToolError(f"there is no order {digits}; check the number with the caller")
        response.raise_for_status()
        order = await response.json()
    if order["status"] == "shipped":
        return f"Order {digits} shipped on {order['shipped_on']} with {order['carrier']} and arrives {order['eta']}."
    return f"Order {digits} is {order['status']} and has not shipped yet."
