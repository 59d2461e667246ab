"""The Redis client from ``REDIS_URL``: one server, or a Redis Cluster.

* ``redis://[:password@]host:6379/0`` (``rediss://`` for TLS): one server (or a proxy in front
  of many), with redis-py's ``Redis``.
* ``redis+cluster://[:password@]host:6379`` (``rediss+cluster://``): a Redis Cluster, with
  redis-py's ``RedisCluster``; the host is any node, the others are discovered from it.

Keys that one operation touches together share a hash tag (the part in ``{}``), so in a
cluster they live in one slot: a call's stream lease and its re-attach counter are claimed in
one script and set in one transaction. Single-key families carry their id as the tag too
(``call:{<call_control_id>}:session``, ``ratelimit:{<key>}``, ``pacing:{<key>}``), which keeps
whatever is later added per call or per key next to them. The key prefix itself holds no
braces: a tag in it would put every key of the deployment in one slot.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def connect(url: str) -> Any:
    """A redis.asyncio client for ``url`` (not yet connected: the first command connects)."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if sep and plain is not None:
        return RedisCluster.from_url(f"{plain}://{rest}")
    return redis.from_url(url)


def tag(value: object) -> str:
    """``value`` as a hash tag: the keys that embed the same tag share a cluster slot."""
    return "{" + str(value) + "}"
