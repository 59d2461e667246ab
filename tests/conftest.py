"""Test-wide settings: hypothesis without wall-clock deadlines (CI machines are shared and noisy)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")
