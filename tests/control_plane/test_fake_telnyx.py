"""The control plane's tests drive a FakeTelnyx where the real client would be: it must take every
call the real client takes, or a path the fake cannot be called on is never tested (the fuzz test
once found machines.py passing stream_url positionally, which the fake refused)."""

from __future__ import annotations

import inspect

import pytest

from control_plane.telnyx.client import TelnyxClient
from tests.control_plane.fakes import FakeTelnyx

FAKED = sorted(name for name, member in vars(FakeTelnyx).items()
               if inspect.iscoroutinefunction(member) and not name.startswith("_") and hasattr(TelnyxClient, name))


def test_the_fake_stands_in_for_the_client_s_methods():
    assert {"dial", "hangup", "streaming_start", "get_call"} <= set(FAKED)


@pytest.mark.parametrize("name", FAKED)
def test_the_fake_takes_each_call_the_real_client_takes(name):
    real = inspect.signature(getattr(TelnyxClient, name))
    fake = inspect.signature(getattr(FakeTelnyx, name))
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in fake.parameters.values())
    real_positional = [p for p in real.parameters.values()
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    fake_positional = [p for p in fake.parameters.values()
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # Positionally, up to the real client's arity (a fake taking more is fine).
    assert len(fake_positional) >= len(real_positional) or any(
        p.kind is p.VAR_POSITIONAL for p in fake.parameters.values()), (name, real, fake)
    # By keyword, everything the real client names.
    for p in real.parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            assert takes_any_keyword or p.name in fake.parameters, (name, p.name)
