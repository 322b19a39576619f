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


LEVELS = {"layers": 1, "kernels": 2, "geometry": 3, "runtime": 4}
"""README's layout: the public surface (top-level modules, level 0) uses the layers, the layers the kernels, the
kernels the geometry, and everything the runtime services."""


def _package_imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, e.g. ``kernels.conv``) -> the package's modules it imports."""
    import ast

    package = ROOT / "im2col_cnn"
    modules = {
        ".".join(p.relative_to(package).with_suffix("").parts): p
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = here[: len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            for alias in node.names:
                for target in (".".join([*base, alias.name]), ".".join(base)):
                    if target in modules:
                        found.add(target)
                        break
        graph[name] = found - {name}
    return graph


def _level(module: str) -> int:
    return LEVELS.get(module.split(".")[0], 0) if "." in module else 0


def test_imports_flow_down_the_layout_and_form_no_circle():
    graph = _package_imports()
    assert {"layers.conv", "kernels.conv", "kernels.bias", "geometry.windows", "runtime.parallel"} <= set(graph)
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if _level(b) < _level(a))
    assert upward == []
    # no circle: a depth-first search never meets a module still on its path
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
