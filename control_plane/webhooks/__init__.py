"""Event webhooks to the organisations' own apps (issue 18).

``events``: which change of a call, turn or campaign is which event, and its payload (pure).
``signing``: endpoint secrets and Standard Webhooks signatures (the ``standardwebhooks`` package).
``delivery``: the background worker that sends the outbox (``control_plane/store/outbox.py``).
"""
