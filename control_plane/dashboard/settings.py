"""Settings of the admin dashboard (``CALLAGENT_DASHBOARD__...``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Serve the admin dashboard at /dashboard.")
    session_ttl_s: int = Field(
        8 * 3600, ge=60, le=30 * 86400,
        description="A dashboard sign-in lasts this long (fixed, not sliding); then the API key is asked again.")
    secure_cookie: Literal["auto", "always", "never"] = Field(
        "auto",
        description="The session cookie's Secure flag. auto: when the request came over https, directly or "
        "(with trust_forwarded_proto) through a TLS-terminating proxy; always: behind any TLS front end.")
    trust_forwarded_proto: bool = Field(
        False, description="Believe X-Forwarded-Proto (only behind a proxy that sets it and strips clients').")
    signin_attempts_per_minute: int = Field(
        20, ge=1, description="Sign-in attempts a client address may make a minute (shared through Redis).")
    page_size: int = Field(50, ge=5, le=200, description="Calls per page of the call list.")
    live_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the live-calls stream re-reads the organisation's live calls.")
    max_live_calls: int = Field(200, ge=1, le=2000, description="Most live calls the live panel shows.")
