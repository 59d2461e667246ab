"""The dashboard tests use the control plane's fixtures (real PostgreSQL and Redis, SQLite)."""

from tests.control_plane.conftest import backend, pg_schema, redis_prefix, settings
