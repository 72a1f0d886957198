"""The latent explorer: a local web app to look inside trained VAEs and compare runs.

``python -m vaekit.explore RUN_FOLDER [MORE_RUNS ...]`` (or a ``.safetensors`` file) starts a
Gradio page on http://127.0.0.1:7860 with samples, latent sliders, interpolations,
reconstructions and a comparison of runs; see ``docs/explorer.md``. It needs the ``explore``
extra (``pip install -e ".[explore]"``).

This package imports no Gradio: the loading (:mod:`.runs`), the pictures (:mod:`.images`) and
the computations (:mod:`.compute`) are plain functions, tested without a browser; only
:func:`vaekit.explore.app.build_app` and :func:`vaekit.explore.app.launch` import Gradio, and
``import vaekit`` does not import this package at all.
"""

from .compute import (
    MetricRow,
    ReconReport,
    closer_to_one,
    curves_figure,
    decode_units,
    edit_code,
    encode,
    interpolate,
    is_headline,
    metrics_markdown,
    metrics_rows,
    reconstruct,
    reconstruct_batch,
    sample,
    top_units,
    traverse,
    unit_kl,
)
from .images import ExploreError, error_map, fit_images, read_folder, read_image, to_display
from .runs import Explorer, ImageSet, Run, load_run

__all__ = [
    "ExploreError",
    "Explorer",
    "ImageSet",
    "MetricRow",
    "ReconReport",
    "Run",
    "closer_to_one",
    "curves_figure",
    "decode_units",
    "edit_code",
    "encode",
    "error_map",
    "fit_images",
    "interpolate",
    "is_headline",
    "load_run",
    "metrics_markdown",
    "metrics_rows",
    "read_folder",
    "read_image",
    "reconstruct",
    "reconstruct_batch",
    "sample",
    "to_display",
    "top_units",
    "traverse",
    "unit_kl",
]
