"""Regenerate the explorer's screenshots for docs/explorer.md (docs/images/explorer-*.png).

    .venv/bin/python scripts/explorer-screenshots.py              # trains two short runs first
    .venv/bin/python scripts/explorer-screenshots.py RUN_A RUN_B  # or use run folders you have

Without runs it trains fmnist32 twice with examples/train.py for --steps steps (β 0.8, the
recipe's, and β 0.1), with quick final metrics: 10-15 minutes on 2 busy CPU cores. Then it
starts ``python -m vaekit.explore`` on a free loopback port, opens it in headless Chromium
(``bash scripts/get-chromium.sh``), moves a latent slider, draws a traversal grid, and saves the
"Latent sliders" and "Compare runs" tabs as palette PNGs (a few tens of kB each).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaekit.explore import _browser as B  # noqa: E402


def train(out: Path, steps: int) -> list[Path]:
    """Two short fmnist32 runs that differ in β; their run folders."""
    runs = []
    for beta in ("0.8", "0.1"):
        before = set(out.glob("*"))
        cmd = [
            sys.executable, str(ROOT / "examples" / "train.py"),
            "--config", str(ROOT / "examples" / "recipes" / "fmnist32.json"),
            "--beta", beta, "--name", f"fmnist32-beta{beta}", "--out", str(out),
            "--max-steps", str(steps), "--eval-every", str(max(1, steps // 3)),
            "--log-every", str(max(1, steps // 15)), "--image-every", "0", "--fid-samples", "0",
            "--eval-limit", "1000", "--iwae-images", "100", "--progress", "off",
        ]  # fmt: skip
        print(f"[screenshots] training fmnist32 with beta {beta} for {steps} steps", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        (new,) = set(out.glob("*")) - before
        runs.append(new)
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="run folders (default: train two)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run (no runs given)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    p.add_argument("--keep", type=Path, help="train into this folder and keep the runs")
    args = p.parse_args()
    if (why := B.missing()) is not None:
        sys.exit(f"[screenshots] {why}")
    with tempfile.TemporaryDirectory(prefix="vaekit-screenshots-") as tmp:
        if not args.runs and args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        runs = args.runs or train(args.keep or Path(tmp), args.steps)
        port = B.free_port()
        log = Path(tmp) / "server.log"
        proc = B.start_server([*runs, "--threads", "2"], port, log=log)
        driver = B.chromium(1280, 1000)
        try:
            shoot(driver, port, args.out)
        finally:
            driver.quit()
            B.stop_server(proc)


def shoot(d, port: int, out: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    d.get(f"http://127.0.0.1:{port}/")
    B.wait_image(d, "samples-image", timeout=120)
    B.open_tab(d, "Latent sliders")
    src = B.wait_image(d, "latent-image")
    B.press(d, "latent-slider-0", Keys.ARROW_RIGHT, 30)  # +1.5 on the unit with the most KL
    B.wait_image(d, "latent-image", other_than=src)
    B.element(d, "traversal-button").click()
    B.wait_image(d, "traversal-image")
    d.set_window_size(1280, 1150)
    d.execute_script("window.scrollTo(0, 0)")
    print(f"[screenshots] {B.screenshot(d, out / 'explorer-latent.png')}")

    B.open_tab(d, "Compare runs")
    B.wait_image(d, "compare-curves", timeout=60)
    B.wait_image(d, "compare-recons-1", timeout=60)
    d.set_window_size(1280, 1800)
    tabs = B.element(d, "tab-compare")
    d.execute_script("arguments[0].scrollIntoView({block: 'start'})", tabs)
    print(f"[screenshots] {B.screenshot(d, out / 'explorer-compare.png')}")


if __name__ == "__main__":
    main()
