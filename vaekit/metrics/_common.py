"""Kept for code that imports the helpers from here (the example trainer): they live in
:mod:`vaekit._inference`, below the metrics, the pictures and the priors."""

from .._inference import acc_dtype, batch_images, evaluating, iter_images, model_device

__all__ = ["acc_dtype", "batch_images", "evaluating", "iter_images", "model_device"]
