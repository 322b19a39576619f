"""API.md documents the whole public API: every name in ``im2col_cnn.__all__`` and in the drop-in modules'."""

from __future__ import annotations

import pathlib
import re

import pytest

import im2col_cnn as ic
from im2col_cnn import coursera, cs231n

API = (pathlib.Path(__file__).resolve().parents[1] / "API.md").read_text()
DOCUMENTED = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\(|`)", API))


@pytest.mark.parametrize("name", ic.__all__)
def test_every_public_name_is_documented(name):
    assert name in DOCUMENTED, f"{name} is public (im2col_cnn.__all__) but API.md does not document it"


@pytest.mark.parametrize("name", [*coursera.__all__, *cs231n.__all__])
def test_every_drop_in_name_has_a_docstring(name):
    module = coursera if name in coursera.__all__ else cs231n
    assert (getattr(module, name).__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_every_public_function_states_its_shapes():
    for name in ic.__all__:
        obj = getattr(ic, name)
        doc = obj.__doc__ or ""
        assert doc.strip(), f"{name} has no docstring"
        if callable(obj) and ("_forward" in name or "_backward" in name or name in ("unfold", "fold", "im2col")):
            assert "shape" in doc, f"{name}'s docstring states no shape"
