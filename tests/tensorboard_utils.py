"""Reading TensorBoard event files back with TensorBoard's own reader, for the tests of both
trainers (examples/train.py --tensorboard and examples/lightning): the tags they must share."""

from __future__ import annotations

import io
from pathlib import Path

import vaekit as vk

# what both trainers log for a run with a `bce` reconstruction loss (vk.runs)
SCALARS = {
    "train/total", "train/recon", "train/bce", "train/kl", "train/kl_raw", "train/beta",
    "train/lr", "val/total", "val/recon", "val/bce", "val/kl", "val/kl_raw", "val/psnr",
    "val/ssim", "latent/active_units", "latent/kl_mean",
}  # fmt: skip
HISTOGRAMS = {"latent/kl_per_dim"}
IMAGES = set(vk.runs.IMAGE_TAGS)


def read_events(folder: Path):
    """An EventAccumulator over the event files of ``folder``, everything loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event files in {folder}: {sorted(Path(folder).iterdir())}"
    acc = EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}
    )
    acc.Reload()
    return acc


def check_events(acc, *, last_step: int, latent_dims: int) -> dict[str, set]:
    """The shared tags are there; the histogram has one value per latent dimension; the image
    grids decode as PNGs and the last ones are at the last step. Returns the tags."""
    from PIL import Image

    tags = {kind: set(acc.Tags()[kind]) for kind in ("scalars", "histograms", "images")}
    assert tags["scalars"] >= SCALARS, f"missing scalars: {SCALARS - tags['scalars']}"
    assert tags["histograms"] >= HISTOGRAMS, tags["histograms"]
    assert tags["images"] >= IMAGES, tags["images"]
    histo = acc.Histograms("latent/kl_per_dim")[-1]
    assert histo.histogram_value.num == latent_dims and histo.histogram_value.min >= 0
    for tag in IMAGES:
        events = acc.Images(tag)
        assert events[-1].step == last_step, (tag, [e.step for e in events])
        picture = Image.open(io.BytesIO(events[-1].encoded_image_string))
        assert picture.size == (events[-1].width, events[-1].height) and min(picture.size) > 32
    assert max(e.step for e in acc.Scalars("train/total")) == last_step
    return tags
