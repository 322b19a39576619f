"""Test configuration: make the shared helpers importable and set up Hypothesis profiles.

Helpers live in ``_helpers.py`` and ``_strategies.py`` next to the tests (imported as top-level modules).
The property tests are deterministic by default (the same examples every run, so that a run's verdict is
reproducible); ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples instead, to search for new failures.
(``ci`` is kept as a name for the deterministic profile.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
