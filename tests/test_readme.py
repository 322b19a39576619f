"""README's opening example runs as written and prints what its last comment says; its commands are the CI's."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_opening_example_runs_as_written():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)  # the first Python block
    assert "ic.conv2d_backward" in code and "ic.max_pool2d_forward" in code
    expected = code.strip().splitlines()[-1].split("#", 1)[1].strip()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().strip() == expected


def test_readme_has_the_two_set_up_commands():
    commands = re.findall(r"<!-- (main|test)-command -->\n```bash\n(.*?)\n```", README)
    assert [name for name, _ in commands] == ["main", "test"]
    assert all(cmd.startswith("python3 -m venv .venv && ") for _, cmd in commands)
    assert commands[1][1].endswith(".venv/bin/python -m pytest")
