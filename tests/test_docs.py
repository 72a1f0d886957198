"""Docs tell the truth: every ```python block in README.md and docs/*.md runs.

Blocks of one file run top to bottom in one namespace, in a temporary working directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
ALL_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES = [p for p in ALL_PAGES if FENCE.search(p.read_text())]


def test_readme_and_module_pages_have_code():
    names = {p.name for p in PAGES}
    assert "README.md" in names
    assert {"blocks.md", "networks.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_code_runs(page, tmp_path, monkeypatch):
    blocks = FENCE.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # never reach a real cache
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as err:  # re-raise with the block for a readable failure
            raise AssertionError(f"{page.name} block {i} failed:\n{code}") from err
