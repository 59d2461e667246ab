"""The HTTP session a provider client uses: the caller's, or one it makes and closes itself."""

from __future__ import annotations

import aiohttp


class SessionHolder:
    __slots__ = ("_session", "_owned")

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._owned = session is None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=0: one long-lived socket per call; the default pool of 100 would queue call 101.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._owned = True
        return self._session

    async def aclose(self) -> None:
        """Close the session if it was made here (a session the caller gave is left open)."""
        if self._owned and self._session is not None:
            await self._session.close()
        self._session = None
