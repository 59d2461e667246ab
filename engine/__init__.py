"""Per-call media engine: Telnyx media streams in, agent audio out.

The modules from :mod:`engine.protocol` to :mod:`engine.playout` are sans-IO:
they take bytes, frames and a clock and return frames and events. Only
:mod:`engine.edge` touches sockets. The engine never imports the control plane.
"""
