"""Outbound campaigns: contacts uploaded to a campaign, dialled exactly once per attempt by any number
of workers, paced, windowed, retried, with outcomes from the call's webhooks. See README.md."""
