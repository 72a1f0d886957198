"""``python -m vaekit.explore RUN [RUN ...] [--images FOLDER] [--port 7860]``: the explorer.

Each RUN is a run folder of ``examples/train.py`` or ``examples/lightning/train.py``, a
``.safetensors`` file of ``vae.save``, or a folder of run folders (a Hydra sweep, a whole
``runs/``): each run inside it is opened. A path that cannot be opened is reported in the terminal and at the top of the page; the page
starts anyway, and more runs can be opened from it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..runs import CHECKPOINTS, find_runs
from .images import ExploreError
from .runs import TEST_IMAGES, Explorer


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vaekit.explore``."""
    p = argparse.ArgumentParser(
        prog="python -m vaekit.explore",
        description="A local web page to look inside trained VAEs and compare runs: samples, "
        "latent sliders, interpolations, reconstructions, metrics and training curves.",
    )
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run folders (with best.safetensors), .safetensors model files, or folders of run "
        "folders (a sweep: every run inside is opened); two or more runs to compare them",
    )
    p.add_argument(
        "--images",
        metavar="FOLDER",
        help="test images for runs not trained on Fashion-MNIST (png/jpg/...; the first "
        f"{TEST_IMAGES} are offered)",
    )
    p.add_argument("--port", type=int, default=7860, help="the server's port (default: 7860)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 makes the "
        "page reachable from the network, without any password)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p


def expand(paths: list[str]) -> list[str]:
    """The paths, with a folder that is not a run but holds runs (a Hydra sweep of the
    Lightning example, a whole ``runs/``) replaced by the run folders inside it."""
    out = []
    for path in paths:
        p = Path(path).expanduser()
        inside = []
        if p.is_dir() and not any((p / name).is_file() for name in CHECKPOINTS):
            inside = find_runs(p)
        if inside:
            print(f"[explore] {path}: opening the {len(inside)} run(s) inside it", flush=True)
        out += [str(r) for r in inside] or [path]
    return out


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Open the runs, then serve the page until Ctrl-C; returns the exit status."""
    args = build_parser().parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ex = Explorer(images=args.images)
    messages = []
    for path in expand(args.runs):
        try:
            run = ex.open(path)
        except ExploreError as err:
            messages.append(str(err))
            print(f"[explore] {err}", file=sys.stderr, flush=True)
            continue
        print(f"[explore] loaded {run.name} from {run.checkpoint}", flush=True)
    from .app import launch, temp_dir

    print(f"[explore] serving on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    print(f"[explore] rendered pictures go to {temp_dir()} (removed when the explorer stops)",
          flush=True)  # fmt: skip
    # `kill` (SIGTERM) stops it like Ctrl-C: the server closes and the folder is removed
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(ex, args.host, args.port, messages=messages)
    except KeyboardInterrupt:
        pass
    except OSError as err:  # e.g. the port is taken
        print(f"[explore] cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
