"""Regenerate the TensorBoard screenshots of docs/lightning.md (docs/images/tensorboard-*.png).

    .venv/bin/python scripts/tensorboard-screenshots.py               # trains a short sweep first
    .venv/bin/python scripts/tensorboard-screenshots.py --logdir tb_logs   # or use logs you have

Without --logdir it runs examples/lightning/train.py as a two-run sweep (a constant and a
cyclical β, fmnist32 on Fashion-MNIST, --steps optimizer steps each, a validation and its
pictures every --steps/4 steps): a few minutes on 2 busy CPU cores. Then it starts
``tensorboard --logdir`` on a free loopback port, opens it in headless Chromium (``bash
scripts/get-chromium.sh``) and saves the scalars (``train/total``, ``train/beta``,
``val/psnr``) and the images dashboards as palette PNGs. Needs the ``lightning`` extra.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaekit.explore import _browser as B  # noqa: E402

SCALARS = "train/total|train/beta|val/psnr"


def train(workdir: Path, steps: int) -> Path:
    """A two-run sweep (constant and cyclical β) of the Lightning example; its tb_logs/."""
    every = max(1, steps // 4)
    cmd = [
        sys.executable, str(ROOT / "examples" / "lightning" / "train.py"), "-m",
        "schedule=constant,cyclical", "loss.beta=0.5", "trainer.max_epochs=1000",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={every}", "trainer.check_val_every_n_epoch=null",
        f"trainer.log_every_n_steps={max(1, steps // 50)}", "trainer.enable_progress_bar=false",
        "data.limit=12000",
    ]  # fmt: skip
    print(f"[screenshots] training a two-run sweep for {steps} steps each", flush=True)
    subprocess.run(cmd, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    return workdir / "tb_logs"


def start_tensorboard(logdir: Path, port: int, log: Path) -> subprocess.Popen:
    """``tensorboard --logdir LOGDIR`` on 127.0.0.1:PORT, once it answers."""
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host",
           "127.0.0.1", "--port", str(port), "--reload_interval", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tensorboard exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as r:
                if r.status == 200 and len(r.read()) > 2:  # "[]" until the runs are read
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    B.stop_server(proc)
    raise TimeoutError(f"tensorboard did not answer on port {port} within 60 s")


def count(d, css: str) -> int:
    return int(d.execute_script(f"return document.querySelectorAll({css!r}).length"))


def shoot(d, port: int, out: Path) -> None:
    base = f"http://127.0.0.1:{port}/"
    filt = SCALARS.replace("/", "%2F").replace("|", "%7C")
    # the dashboards draw inside shadow roots: wait for the page's frame, then give the
    # charts and pictures time to load (they come from the server's data routes)
    d.get(f"{base}?darkMode=false#scalars&tagFilter={filt}&_smoothingWeight=0")
    B.wait_for(lambda: count(d, "svg") >= 3, 60, "the scalars dashboard")
    time.sleep(8)
    print(f"[screenshots] {B.screenshot(d, out / 'tensorboard-scalars.png')}")
    d.get(f"{base}?darkMode=false#images")
    B.wait_for(lambda: count(d, "svg") >= 3, 60, "the images dashboard")
    time.sleep(10)
    print(f"[screenshots] {B.screenshot(d, out / 'tensorboard-images.png')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", type=Path, help="TensorBoard logs (default: train a sweep)")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps per run (no --logdir)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where PNGs go")
    p.add_argument("--keep", type=Path, help="train in this folder and keep runs/ and tb_logs/")
    args = p.parse_args()
    if (why := B.missing()) is not None:
        sys.exit(f"[screenshots] {why}")
    with tempfile.TemporaryDirectory(prefix="vaekit-tb-screenshots-") as tmp:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        logdir = args.logdir or train(args.keep or Path(tmp), args.steps)
        port = B.free_port()
        proc = start_tensorboard(logdir, port, Path(tmp) / "tensorboard.log")
        driver = B.chromium(1280, 1100)
        try:
            shoot(driver, port, args.out)
        finally:
            driver.quit()
            B.stop_server(proc)


if __name__ == "__main__":
    main()
