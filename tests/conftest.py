"""Test configuration: make the shared helpers importable and set up Hypothesis profiles.

Helpers live in ``_helpers.py`` and ``_strategies.py`` next to the tests (imported as top-level modules).
``HYPOTHESIS_PROFILE=ci`` makes the property tests deterministic (same examples every run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
