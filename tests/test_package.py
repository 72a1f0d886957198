"""Packaging promises: version, typing marker, lazy heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import vaekit as vk


def test_version_and_py_typed():
    assert isinstance(vk.__version__, str) and vk.__version__.count(".") == 2
    assert (Path(vk.__file__).parent / "py.typed").is_file()


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, vaekit as vk; "
        "heavy = [m for m in ('torchvision', 'lpips', 'matplotlib', 'scipy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"import vaekit imported {res.stdout.strip()}"


def test_public_names_exist():
    for name in vk.__all__:
        assert hasattr(vk, name), name
    for name in ("ConvNormAct", "SqueezeExcitation", "ResidualBottleneck", "ResBlock",
                 "SelfAttention", "Downsample", "Upsample"):  # fmt: skip
        assert hasattr(vk.blocks, name), name
