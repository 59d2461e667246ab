"""Recorded-call corpus: caller audio (8 kHz μ-law WAV) plus a JSON script per call."""
