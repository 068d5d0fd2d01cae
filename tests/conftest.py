"""Hypothesis profiles for the suite.

``ci`` (the default) keeps the whole suite fast; ``thorough`` draws many more examples. Choose one
with ``pytest --hypothesis-profile=thorough`` or ``MINIGRAD_HYPOTHESIS_PROFILE=thorough``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MINIGRAD_HYPOTHESIS_PROFILE", "ci"))
