"""The control plane's long-lived parts, built from settings and owned by the app.

:class:`ControlPlane` holds the store (opened at start-up when there is something to
open, otherwise on first use, so serving media never creates an empty database), the
Redis client and what uses it (rate limiter, session store, replay guard; in-process
versions without Redis), the Telnyx client, the webhook event worker and the
:class:`~control_plane.recorder.CallRecorder` the media pipeline reports through.

Tests and embedders may replace ``telnyx`` (anything with the ``TelnyxClient`` methods
used: ``dial``, ``answer``, ``hangup``, ``record_start``...) before the app starts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import redisconn
from .campaigns.runtime import CampaignRuntime
from .crypto import DataKeys, load_data_keys
from .dialsweep import UnconfirmedDialSweeper
from .errors import ApiError
from .events import EventWorker
from .knowledge.service import KnowledgeService
from .metrics import ControlPlaneMetrics
from .ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from .recorder import CallRecorder
from .recovery import StreamRecovery
from .replay import MemoryReplayStore, RedisReplayStore, ReplayStore
from .sessions import MemorySessionStore, RedisSessionStore, SessionStore
from .settings import Settings
from .store import Repository, open_repository, sqlite_path
from .streamleases import RedisStreamLeases
from .telnyx.client import TelnyxClient
from .webhooks.delivery import OutboundWebhooks

log = logging.getLogger(__name__)

DRAIN_RETRY_AFTER_S = 5


class ControlPlane:
    def __init__(self, settings: Settings, *, metrics: ControlPlaneMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ControlPlaneMetrics()
        self.metrics.watch_pool(lambda: getattr(self._repo.db, "pool", None) if self._repo is not None else None)
        self.telnyx: Any = None
        self.redis: Any = None
        self.rate_limiter: RateLimiter = MemoryRateLimiter()
        self.sessions: SessionStore = MemorySessionStore(settings.session_ttl_s)
        self.replay_guard: ReplayStore = MemoryReplayStore(settings.webhooks.tolerance_s)
        self._keys: DataKeys | None = None
        self.knowledge = KnowledgeService(settings.knowledge)
        self._repo: Repository | None = None
        self._repo_lock = asyncio.Lock()
        self._owns_telnyx = False
        self._started = False
        self._draining = False
        self._closed = False

        self.worker = EventWorker(self)
        self.recovery = StreamRecovery(self)
        self.dial_sweeper = UnconfirmedDialSweeper(self)
        self.recorder = CallRecorder(self)
        self.campaigns = CampaignRuntime(self)  # its webhook listener is registered with self.worker
        self.outbound_webhooks = OutboundWebhooks(self)  # events to the organisations' apps

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def keys(self) -> DataKeys:
        if self._keys is None:
            self._keys = load_data_keys(self.settings)
        return self._keys

    def store_exists(self) -> bool:
        return self.settings.database_url is not None or sqlite_path(self.settings).exists()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        settings = self.settings
        if settings.redis_url is not None:
            self.redis = redisconn.connect(settings.redis_url.get_secret_value())
            prefix = settings.redis_key_prefix
            self.rate_limiter = RedisRateLimiter(self.redis, prefix)
            self.replay_guard = RedisReplayStore(self.redis, prefix, settings.webhooks.tolerance_s)
            self.sessions = RedisSessionStore(self.redis, prefix, settings.session_ttl_s, self.keys.cipher)
            self.recovery.leases = RedisStreamLeases(self.redis, prefix)
        elif settings.database_url is not None and settings.streams.recovery:
            log.warning("no REDIS_URL: media-stream leases are kept in this process, so stream recovery "
                        "assumes this is the only instance on the database")
        if settings.streams.accept_unknown or settings.local_mode:
            log.warning("media streams that carry no call credential are accepted and run the default agent "
                        "(%s)", "streams.accept_unknown" if settings.streams.accept_unknown else "local mode")
        if self.store_exists():
            await self.repository()  # migrate and connect now; fail fast on a bad DATABASE_URL
            self.worker.start()  # and process what a previous run stored but did not finish
            self.campaigns.start()  # the campaign dialer (campaigns.dialer)
            self.dial_sweeper.start()  # API starts a previous run died in the middle of
            self.recovery.start()  # calls whose media stream a previous run (or another instance) lost
            self.outbound_webhooks.start()  # and what the outbox holds from before

    async def close(self) -> None:
        # From here on no late request may reopen the store (and restart the dialer on it).
        self._closed = True
        self._started = False
        await self.campaigns.stop()
        await self.dial_sweeper.stop()
        await self.recovery.stop()
        await self.worker.stop()
        await self.outbound_webhooks.stop()
        if self._repo is not None:
            await self._repo.close()
            self._repo = None
        await self.knowledge.close()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self._owns_telnyx and self.telnyx is not None:
            await self.telnyx.close()
            self.telnyx = None

    # -- draining --------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """Shutting down gracefully: not ready, no new dials or campaign claims; webhooks and
        the calls already up go on."""
        return self._draining

    async def begin_drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        await self.campaigns.stop()  # no new claims; dials in flight finish, unsent claims go back

    def refuse_new_calls(self) -> None:
        """503 with Retry-After while draining: the client retries, and the load balancer
        (which reads /readyz) sends it to an instance that is not going away."""
        if self._draining:
            raise ApiError(503, "draining", "this instance is shutting down; retry the request",
                           headers={"Retry-After": str(DRAIN_RETRY_AFTER_S)})

    async def repository(self) -> Repository:
        if self._repo is None:
            if self._closed:
                raise ApiError(503, "shutting_down", "the service is shutting down")
            async with self._repo_lock:
                if self._repo is None:
                    repo = await open_repository(self.settings, keys=self.keys)
                    self.outbound_webhooks.attach(repo)  # before any write: events go with their change
                    self._repo = repo
                    if self._started:
                        self.worker.start()
                        self.campaigns.start()
                        self.dial_sweeper.start()
                        self.recovery.start()
                        self.outbound_webhooks.start()
        return self._repo

    # -- Telnyx ------------------------------------------------------------------------------

    def telnyx_client(self) -> Any:
        if self.telnyx is None:
            key = self.settings.telnyx_api_key
            if key is None:
                raise ApiError(503, "not_configured", "Telnyx is not configured (set TELNYX_API_KEY)")
            self.telnyx = TelnyxClient(key.get_secret_value(), base_url=self.settings.telnyx_api_base)
            self._owns_telnyx = True
        return self.telnyx

    def stream_url(self) -> str:
        base = self._public_url()
        if base.startswith("https://"):
            base = "wss://" + base[len("https://"):]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://"):]
        return base + self.settings.server.media_path

    def webhook_url(self) -> str:
        return self._public_url() + "/webhook/telnyx"

    def _public_url(self) -> str:
        url = self.settings.server.public_url
        if not url:
            raise ApiError(503, "not_configured",
                           "the server's public URL is not configured (set CALLAGENT_SERVER__PUBLIC_URL)")
        return url.rstrip("/")

    @property
    def stream_auth_token(self) -> str | None:
        token = self.settings.stream_auth_token
        return token.get_secret_value() if token else None
