"""A minimal progress bar: tqdm when it is installed, else one self-overwriting line on stderr.

tqdm is imported only when a bar is shown, so ``import vaekit`` stays light.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["progress_bar"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _LinePrinter:
    """``desc: 40/200 [loss=1.23]`` rewritten in place at most every ``interval`` seconds."""

    def __init__(self, total: int | None, desc: str, interval: float = 0.5) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.n, self.postfix, self._last = 0, "", 0.0
        self._start = time.perf_counter()

    def _line(self) -> str:
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        elapsed = time.perf_counter() - self._start
        extra = f" [{self.postfix}]" if self.postfix else ""
        return f"\r{self.desc}: {count} {elapsed:.1f}s{extra}"

    def _show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= self.interval:
            sys.stderr.write(self._line())
            sys.stderr.flush()
            self._last = now

    def update(self, n: int = 1) -> None:
        self.n += n
        self._show()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        self._show(force=True)
        sys.stderr.write("\n")
        sys.stderr.flush()


def progress_bar(total: int | None, desc: str, enabled: bool = True) -> Any:
    """An object with ``update(n)``, ``set_postfix_str(text)`` and ``close()``.

    Args:
        total: number of updates expected (``None`` if unknown).
        desc: label in front of the count.
        enabled: ``False`` gives a silent bar (``progress=False`` in vaekit functions).
    """
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LinePrinter(total, desc)
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
