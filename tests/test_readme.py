"""README's Python blocks run unchanged as scripts (``python file.py``) and print what their last comment says;
its commands are the CI's."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
IMAGES_LINE = re.compile(r"^IMAGES = [0-9_]+", re.M)  # the Dask block's image count: shortened here
FEW_IMAGES = "IMAGES = 512"


def _expected_output(code: str) -> str | None:
    """What a block's last ``print`` line says it prints (its trailing comment), if it has one."""
    prints = [line for line in code.splitlines() if line.strip().startswith("print(") and "#" in line]
    return prints[-1].split("#", 1)[1].strip() if prints else None


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 3
    assert "ic.conv2d_backward" in BLOCKS[0] and "ic.max_pool2d_forward" in BLOCKS[0]
    assert any("dask" in code for code in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_python_block_runs_as_a_script(index, tmp_path):
    code = BLOCKS[index]
    expected = _expected_output(code)
    if "dask" in code:
        if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
            pytest.skip("the Dask block needs dask and distributed (the dask extra)")
        assert len(IMAGES_LINE.findall(code)) == 1, "the Dask block takes its image count from one IMAGES line"
        code = IMAGES_LINE.sub(FEW_IMAGES, code)
        expected = expected and expected.replace("20000", "512")
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(code)
    # Outside the checkout: the installed package is imported, as a user's script would.
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"README block {index} failed as a script:\n{done.stderr[-3000:]}"
    if expected is not None:
        assert done.stdout.strip().splitlines()[-1] == expected


def test_readme_has_the_two_set_up_commands():
    commands = re.findall(r"<!-- (main|test)-command -->\n```bash\n(.*?)\n```", README)
    assert [name for name, _ in commands] == ["main", "test"]
    assert all(cmd.startswith("python3 -m venv .venv && ") for _, cmd in commands)
    assert commands[1][1].endswith(".venv/bin/python -m pytest")
