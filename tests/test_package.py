"""The package's face: dir() lists the public API only, one version, the licence, the type marker."""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys
import types

import pytest

import im2col_cnn as ic

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_dir_lists_the_public_api_and_the_drop_in_modules_only():
    names = dir(ic)
    assert set(ic.__all__) <= set(names)
    modules = sorted(n for n in names if isinstance(getattr(ic, n), types.ModuleType))
    assert modules == ["coursera", "cs231n", "notebook"]
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    for name in ic.__all__:
        assert getattr(ic, name) is not None


def test_the_drop_in_modules_import_by_name():
    from im2col_cnn import coursera, cs231n, notebook

    assert callable(coursera.conv_forward) and callable(cs231n.conv_forward_fast) and notebook.forward is ic.forward


def test_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "im2col_cnn.__version__"' in pyproject
    assert "\nversion =" not in pyproject.split("[tool.setuptools.dynamic]")[0]
    try:
        installed = importlib.metadata.version("im2col-cnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("im2col-cnn is not installed (run from a checkout)")
    assert installed == ic.__version__


def test_licence_and_type_marker_ship():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "im2col_cnn" / "py.typed").exists()


def test_importing_the_package_imports_numpy_only():
    code = (
        "import sys, im2col_cnn; "
        "print(sorted(m for m in ('dask', 'torch', 'sklearn', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
