"""Imports run one way: no module of vaekit imports one from a layer above or beside it.

The source of every module is parsed (nothing is imported), relative imports are resolved,
and every ``import``/``from ... import`` counts wherever it is, inside functions too: a lazy
import is still a dependency. Only imports under ``if TYPE_CHECKING:`` are skipped (they
never run). A new module is placed by its package's entry in ``MODULE_LAYERS``; a new
top-level module or package needs an entry of its own (the test says so).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "vaekit"

# Each layer and the layers directly below it that it may import (and, through them, all of
# theirs). Modules of one layer may import each other. Siblings never import each other:
# losses and metrics both stand on the shared maths, and metrics never reach into losses.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": (),  # argument checks, registries, file formats, the maths losses and metrics share
    "shared": ("core",),  # distributions, typed outputs, schedules
    "blocks": ("shared",),
    "config": ("blocks",),
    "discriminators": (
        "blocks",
    ),  # PatchGAN builds from the norm/act factories  # VAEConfig checks block names against the block registry
    "priors": ("config",),  # VampPrior gets an encoder passed in, never imports models
    "models": ("priors",),
    "presets": ("models",),
    "data": ("shared",),
    "losses": ("shared",),  # the KL reaches the prior through out.prior, not by import
    "metrics": ("shared",),  # models come in as arguments (vae.prior, vae.encode)
    "viz": ("metrics",),
    "runs": ("models", "viz"),  # run folders hold models; their TensorBoard pictures are viz's
    "facade": (
        "presets",
        "discriminators",
        "data",
        "losses",
        "viz",
        "runs",
    ),  # vaekit/__init__.py: `import vaekit as vk`
    "explore": ("facade",),  # the Gradio app, on top of everything, never imported by it
}

# Module or package -> layer; the longest matching dotted prefix wins ("vaekit" alone is
# only the package's __init__).
MODULE_LAYERS: dict[str, str] = {
    "vaekit._validation": "core",
    "vaekit._registry": "core",
    "vaekit._io": "core",
    "vaekit._maths": "core",
    "vaekit._weights": "core",
    "vaekit._inference": "core",
    "vaekit.distributions": "shared",
    "vaekit.outputs": "shared",
    "vaekit.schedules": "shared",
    "vaekit.blocks": "blocks",
    "vaekit.config": "config",
    "vaekit.discriminators": "discriminators",
    "vaekit.priors": "priors",
    "vaekit.models": "models",
    "vaekit.presets": "presets",
    "vaekit.data": "data",
    "vaekit.losses": "losses",
    "vaekit.functional": "losses",  # the losses' functional forms, re-exported
    "vaekit.metrics": "metrics",
    "vaekit.viz": "viz",
    "vaekit.runs": "runs",
    "vaekit": "facade",
    "vaekit.explore": "explore",
}

# (importer, imported name) pairs allowed against the table, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("vaekit.models.vae", "vaekit.__version__"): (
        "the version string is set before vaekit/__init__.py imports anything"
    ),
}


@functools.cache
def allowed(layer: str) -> frozenset[str]:
    """``layer`` and every layer below it."""
    return frozenset({layer}).union(*(allowed(below) for below in LAYERS[layer]))


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


MODULES = module_files()


def layer_of(module: str) -> str | None:
    if module.rpartition(".")[0] == "vaekit" and module not in MODULES:
        return MODULE_LAYERS["vaekit"]  # an attribute of the package (vaekit.__version__)
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in MODULE_LAYERS and (end > 1 or module == "vaekit"):
            return MODULE_LAYERS[prefix]
    return None


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports_of(module: str, path: Path | None = None) -> list[tuple[str, int]]:
    """``(imported vaekit module or name, line)`` for every import in ``module``'s source."""
    path = MODULES[module] if path is None else path
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the submodule pkg.sub; `from mod import name`
                # depends on mod (or, for a package's attribute, on its __init__)
                sub = f"{source}.{alias.name}"
                if sub in MODULES or (source == "vaekit" and alias.name.startswith("__")):
                    found.append((sub, node.lineno))
                else:
                    found.append((source, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return [(name, line) for name, line in found if name.split(".")[0] == "vaekit"]


def test_the_table_is_consistent():
    assert set(MODULE_LAYERS.values()) <= set(LAYERS)
    for layer, below in LAYERS.items():
        assert set(below) <= set(LAYERS), f"{layer} lists unknown layers {set(below) - set(LAYERS)}"
        assert layer not in set().union(*(allowed(b) for b in below)), f"{layer} is in a cycle"


def test_the_resolver_sees_what_it_should():
    # guards the test itself: relative and package-relative imports resolve to modules
    names = {name for name, _ in imports_of("vaekit.metrics.image")}
    assert {"vaekit._maths", "vaekit._validation"} <= names
    assert "vaekit.losses.structural" in {name for name, _ in imports_of("vaekit.functional")}
    assert "vaekit._validation" in {name for name, _ in imports_of("vaekit.schedules")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_layer(module):
    assert layer_of(module) is not None, (
        f"{module} has no layer: add it (or its package) to MODULE_LAYERS in {__file__}"
    )


def violations(module: str, path: Path | None = None) -> list[str]:
    layer = layer_of(module)
    assert layer is not None
    wrong = []
    for name, line in imports_of(module, path):
        target = layer_of(name)
        if target is None:
            wrong.append(f"line {line}: {name} is not a module of vaekit")
        elif target not in allowed(layer) and (module, name) not in EXCEPTIONS:
            wrong.append(
                f"line {line}: {module} ({layer} layer) imports {name} ({target} layer); "
                f"the {layer} layer may import only {sorted(allowed(layer))}"
            )
    return wrong


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    wrong = violations(module)
    assert not wrong, "\n".join(wrong)


def test_an_import_against_the_direction_is_reported(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .._maths import ssim\n"  # fine: core
        "from ..losses import structural\n"  # a sibling
        "def f():\n"
        "    import vaekit.models.vae\n"  # above, inside a function
        "if TYPE_CHECKING:\n"
        "    from ..priors import Prior\n"  # never runs: skipped
    )
    wrong = violations("vaekit.metrics.fake", source)
    assert len(wrong) == 2, wrong
    assert wrong[0].startswith(
        "line 3: vaekit.metrics.fake (metrics layer) imports vaekit.losses.structural "
        "(losses layer)"
    )
    assert "line 5: vaekit.metrics.fake (metrics layer) imports vaekit.models.vae" in wrong[1]
