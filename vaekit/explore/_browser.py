"""Drive the explorer in headless Chromium: the browser test and the docs screenshots.

Uses Debian's ``chromium`` and ``chromium-driver`` (``bash scripts/get-chromium.sh``) through
Selenium with the driver's path given, so Selenium Manager never downloads anything. Not part
of the public API.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("VAEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VAEKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip


def missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: run `bash scripts/get-chromium.sh` (as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is missing: pip install -e ".[explore]"'
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    args: Sequence[str],
    port: int,
    *,
    timeout: float = 90.0,
    log: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``python -m vaekit.explore ARGS --port PORT`` in a subprocess, once it answers HTTP;
    ``env``: variables to add to this process's environment for it."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    # a private picture folder of an explorer in *this* process (vaekit-explore-*) is not the
    # child's: it makes its own
    if os.path.basename(env.get("GRADIO_TEMP_DIR", "")).startswith("vaekit-explore-"):
        del env["GRADIO_TEMP_DIR"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaekit.explore", *map(str, args), "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = Path(log).read_text() if log else ""
            raise RuntimeError(f"the explorer exited with {proc.returncode}:\n{text}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise TimeoutError(f"the explorer did not answer on port {port} within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server from :func:`start_server` (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def chromium(width: int = 1280, height: int = 900):
    """A headless Chromium WebDriver with a fresh profile and network logging."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: no downloads
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    profile = tempfile.mkdtemp(prefix="vaekit-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    quit_browser = driver.quit

    def quit_and_remove_profile() -> None:  # the profile (~5 MB) goes with the browser
        try:
            quit_browser()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_remove_profile
    return driver


def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "a condition"):
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # the page is still rendering
            last = err
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def element(driver, elem_id: str, css: str = ""):
    """The element with id ``elem_id`` (or the first ``css`` match inside it)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} {css}".strip())


def image_src(driver, elem_id: str) -> str | None:
    """The ``src`` of the picture shown in component ``elem_id`` (None before there is one)."""
    from selenium.common.exceptions import NoSuchElementException

    try:
        return element(driver, elem_id, "img").get_attribute("src")
    except NoSuchElementException:
        return None


def wait_image(
    driver, elem_id: str, *, other_than: str | None = None, timeout: float = 30.0
) -> str:
    """Wait until component ``elem_id`` shows a loaded picture (a new one: not ``other_than``)."""

    def ready():
        src = image_src(driver, elem_id)
        if not src or src == other_than:
            return None
        done = driver.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return i && i.complete && i.naturalWidth > 0;",
            f"#{elem_id} img",
        )
        return src if done else None

    return wait_for(ready, timeout, f"a new picture in #{elem_id}")


def pixels(driver, elem_id: str) -> np.ndarray:
    """The picture of component ``elem_id`` as the browser draws it: (H, W, 3) uint8."""
    from PIL import Image

    png = element(driver, elem_id, "img").screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference of two screenshots (0-255), cropped to a common size."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.abs(a[:h, :w].astype(np.int16) - b[:h, :w].astype(np.int16)).mean())


def press(driver, elem_id: str, key: str, times: int = 1) -> None:
    """Move the slider ``elem_id`` with the keyboard, as a user does (input events)."""
    slider = element(driver, elem_id, "input[type=range]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
    slider.send_keys(key * times)


def open_tab(driver, label: str) -> None:
    """Click the tab whose button reads ``label``."""
    from selenium.webdriver.common.by import By

    buttons = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
    match = [b for b in buttons if b.text.strip() == label]
    if not match:
        raise ValueError(f"no tab {label!r}; tabs: {[b.text for b in buttons]}")
    match[0].click()


def upload(driver, elem_id: str, path: str | os.PathLike) -> None:
    """Give ``path`` to the file input of component ``elem_id``."""
    element(driver, elem_id, "input[type=file]").send_keys(str(Path(path).resolve()))


def text(driver, elem_id: str) -> str:
    """The visible text of component ``elem_id``."""
    return element(driver, elem_id).text


def requested_urls(driver) -> list[str]:
    """Every URL the page requested since the last call (from Chromium's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def external(urls: Sequence[str], port: int) -> list[str]:
    """The URLs that leave this machine's explorer (not loopback, data: or blob:)."""
    local = (
        f"http://127.0.0.1:{port}/",
        f"ws://127.0.0.1:{port}/",
        "data:",
        "blob:",
        "about:",
        "chrome:",
    )
    return [u for u in urls if not u.startswith(local)]


def screenshot(driver, path: str | os.PathLike, *, colours: int | None = 128) -> Path:
    """Save the page as a PNG; ``colours`` quantises it (small files for the docs)."""
    from PIL import Image

    img = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    if colours:
        img = img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return path
