"""One import for ``audioop``: the stdlib module up to 3.12, ``audioop-lts`` after.

``audioop-lts`` installs under the same module name, so this shim only exists to
silence the 3.11/3.12 deprecation warning in one place.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ulaw2lin = audioop.ulaw2lin
lin2ulaw = audioop.lin2ulaw
alaw2lin = audioop.alaw2lin
lin2alaw = audioop.lin2alaw
byteswap = audioop.byteswap
rms = audioop.rms
mul = audioop.mul
ratecv = audioop.ratecv
add = audioop.add
max = audioop.max
tomono = audioop.tomono

__all__ = ["ulaw2lin", "lin2ulaw", "alaw2lin", "lin2alaw", "byteswap", "rms", "mul", "ratecv", "add", "max", "tomono"]
