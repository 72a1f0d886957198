"""Root conftest: applies to the tests under tests/ and to the doctests under vaekit/."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temp_files_in_tmp_path(tmp_path, monkeypatch):
    """Python's ``tempfile`` writes into the test's own ``tmp_path`` while the test runs.

    Docstring examples (``tempfile.mkdtemp()``) and library code (the explorer's browser
    profile) then leave nothing behind in the system's temp folder, and pytest removes a
    passing test's ``tmp_path`` right after it (``tmp_path_retention_policy = "failed"``), so
    the whole run needs the disk of the few tests running at once, not of all of them.
    """
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
