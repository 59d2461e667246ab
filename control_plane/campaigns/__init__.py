"""Outbound campaigns: contacts uploaded to a campaign, dialled exactly once per attempt by any number
of workers, paced, windowed, retried, with outcomes from the call's webhooks. See README.md."""

# The REST layer mounts this package's handlers and imports its models, and they import the
# calls API's schemas: load that layer first, whichever module of the two is imported first.
from .. import api as _api  # noqa: F401, E402
