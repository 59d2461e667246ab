"""Speech-to-text, LLM and text-to-speech behind small interfaces (see :mod:`.base`)."""
