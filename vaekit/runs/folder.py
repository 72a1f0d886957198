"""Run folders: what a training run leaves on disk, read in one place.

A run folder is what ``examples/train.py`` and ``examples/lightning/train.py`` write:

- ``best.safetensors`` and ``last.safetensors`` (``vae.save``: config + weights, no pickled
  code; ``best-<prior>.safetensors`` keeps a learned prior when an ex-post one was fitted);
- ``config.json``: ``model`` (``VAEConfig.to_dict()``), ``data`` (``name``, ``root``,
  ``channels``, ``image_size``...), ``args`` (the options: the trainer's command line, or the
  Lightning example's resolved Hydra config) and ``trainer`` (``"train.py"`` or
  ``"lightning"``);
- ``history.csv``: one row per log (``step``, ``split`` ``"train"`` or ``"val"``, ``beta``,
  ``total``, ``recon``, ``kl``, ``kl_raw`` and every other loss term);
- ``metrics.json`` after the final metrics;
- TensorBoard event files (``--tensorboard``: in the folder itself; the Lightning example:
  under ``tb_logs/``, named in ``config.json``'s ``tensorboard``).

Nothing here reads a pickle: ``trainer_state.pt`` and Lightning's ``.ckpt`` files are never
opened. The explorer (``python -m vaekit.explore``) and the trainer's ``--resume`` use this
reader.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..models import VAE

__all__ = [
    "CHECKPOINTS",
    "RunFolder",
    "find_runs",
    "read_history",
    "read_run",
    "write_history",
]

CHECKPOINTS = ("best.safetensors", "last.safetensors")  # the model files, in order of choice
EVENTS = "events.out.tfevents."  # how TensorBoard names its event files


def _number(text: str) -> object:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def read_history(path: str | os.PathLike, *, up_to_step: int | None = None) -> list[dict]:
    """Rows of a ``history.csv`` with numbers parsed and empty cells left out.

    Args:
        path: the file.
        up_to_step: keep only rows with ``step <= up_to_step`` (a resumed run repeats the
            steps logged after its last checkpoint).

    Raises:
        FileNotFoundError: no such file. ValueError: not a CSV file with a header.

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> path = os.path.join(tempfile.mkdtemp(), "history.csv")
        >>> _ = open(path, "w").write("step,split,total,kl\\n1,train,0.5,\\n2,val,0.25,3.0\\n")
        >>> vk.runs.read_history(path)
        [{'step': 1, 'split': 'train', 'total': 0.5}, {'step': 2, 'split': 'val', 'total': 0.25, 'kl': 3.0}]
        >>> vk.runs.read_history(path, up_to_step=1)
        [{'step': 1, 'split': 'train', 'total': 0.5}]
    """
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {
                k: _number(v) for k, v in row.items() if k is not None and v not in ("", None)
            }
            step = parsed.get("step")
            if up_to_step is not None and isinstance(step, (int, float)) and step > up_to_step:
                continue
            rows.append(parsed)
    return rows


def write_history(path: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> None:
    """Write rows as ``history.csv``: the columns in order of first appearance, a missing
    value as an empty cell. Written to a temporary name and renamed, so a reader (or an
    interrupted run) never sees half a file.

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> path = os.path.join(tempfile.mkdtemp(), "history.csv")
        >>> vk.runs.write_history(path, [{"step": 1, "split": "train", "total": 0.5},
        ...                              {"step": 1, "split": "val", "psnr": 20.0}])
        >>> open(path).read().splitlines()
        ['step,split,total,psnr', '1,train,0.5,', '1,val,,20.0']
    """
    rows = [dict(r) for r in rows]
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _read_json(path: Path, notes: list[str]) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        notes.append(f"{path.name} is unreadable ({err}); left out")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object; left out")
        return {}
    return data


@dataclass
class RunFolder:
    """What a run folder (or a bare ``.safetensors`` model) holds; the model itself is read
    only by :meth:`load_vae`.

    Attributes:
        path: the folder or file given. name: its name (the file's stem for a model file).
        checkpoint: the model file to load: ``best.safetensors``, else ``last.safetensors``,
            or the file given. checkpoints: every model file of the folder, by file name.
        config, metrics: ``config.json`` and ``metrics.json`` (``{}`` when absent).
        history: ``history.csv`` rows (numbers parsed). notes: what was missing or
        unreadable, in words.
    """

    path: Path
    name: str
    checkpoint: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path | None:
        """The run folder (None for a bare model file)."""
        return self.path if self.path.is_dir() else None

    @property
    def trainer(self) -> str | None:
        """``"train.py"``, ``"lightning"``, or None when unknown (a bare model)."""
        named = self.config.get("trainer")
        if isinstance(named, str):
            return named
        if self.folder is not None and (self.folder / ".hydra").is_dir():
            return "lightning"
        return "train.py" if isinstance(self.config.get("args"), dict) else None

    def _data_option(self, lightning_key: str, args_key: str) -> str | None:
        """A data setting: ``config["data"][lightning_key]`` (the Lightning example) or
        ``config["args"][args_key]`` (examples/train.py); None when neither is a string."""
        for section, key in (("data", lightning_key), ("args", args_key)):
            values = self.config.get(section)
            value = values.get(key) if isinstance(values, dict) else None
            if isinstance(value, str):
                return value
        return None

    @property
    def data(self) -> str | None:
        """The training data: ``"fashion-mnist"``, a folder, or None when unknown."""
        return self._data_option("name", "data")

    @property
    def data_root(self) -> str | None:
        """Where the Fashion-MNIST files came from (None: the default place)."""
        return self._data_option("root", "data_root")

    @property
    def tensorboard(self) -> Path | None:
        """The folder with this run's TensorBoard event files, or None."""
        if self.folder is None:
            return None
        if any(p.name.startswith(EVENTS) for p in self.folder.iterdir()):
            return self.folder
        named = self.config.get("tensorboard")
        if isinstance(named, str):
            p = Path(named)
            for candidate in (p, self.folder / p):
                if candidate.is_dir():
                    return candidate
        return None

    def series(self, split: str, column: str) -> list[tuple[int, float]]:
        """``(step, value)`` of one column of the ``split`` rows, where both are numbers.

        Example:
            >>> from pathlib import Path
            >>> import vaekit as vk
            >>> run = vk.runs.RunFolder(Path("r"), "r", Path("r/best.safetensors"), history=[
            ...     {"step": 1, "split": "train", "total": 2.0}, {"step": 2, "split": "val"},
            ...     {"step": 3, "split": "train", "total": 1.5}])
            >>> run.series("train", "total")
            [(1, 2.0), (3, 1.5)]
        """
        out = []
        for row in self.history:
            step, value = row.get("step"), row.get(column)
            if row.get("split") == split and _finite(step) and _finite(value):
                out.append((int(step), float(value)))
        return out

    def load_vae(self, map_location: str | object = "cpu") -> VAE:
        """The model of :attr:`checkpoint` (``vk.VAE.load``), with the prior it was saved with.

        Raises:
            ValueError: the file is not a vaekit model (or its block is not registered).
        """
        return VAE.load(self.checkpoint, map_location=map_location)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_run(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CHECKPOINTS)


def read_run(path: str | os.PathLike) -> RunFolder:
    """Read a run folder (see the module docstring), or name a bare ``.safetensors`` model.

    Args:
        path: a folder written by ``examples/train.py`` or ``examples/lightning/train.py``,
            or a file written by ``vae.save``.

    Raises:
        FileNotFoundError: no such path. ValueError: a folder without a model file (the
            message names the runs inside it, e.g. a Hydra sweep folder), or a file that is
            not ``.safetensors`` (pickles such as ``.pt`` and ``.ckpt`` can run code: refused).

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=()))
        >>> folder = tempfile.mkdtemp()
        >>> vae.save(os.path.join(folder, "last.safetensors"))
        >>> run = vk.runs.read_run(folder)
        >>> run.checkpoint.name, run.metrics, run.notes[0]
        ('last.safetensors', {}, 'no best.safetensors; using last.safetensors')
        >>> run.load_vae().latent_shape
        (4,)
    """
    given = str(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"{given!r}: no such file or folder; expected a run folder (with best.safetensors) "
            "or a .safetensors model file"
        )
    notes: list[str] = []
    if not p.is_dir():
        if p.suffix != ".safetensors":
            raise ValueError(
                f"{given!r} is not a .safetensors file: vaekit loads models only from "
                "safetensors files written by vae.save or the trainers (never pickles such as "
                ".pt or .ckpt files, which can run code)"
            )
        return RunFolder(path=p, name=p.stem, checkpoint=p, checkpoints={p.name: p})
    found = {f.name: f for f in sorted(p.glob("*.safetensors")) if f.is_file()}
    chosen = [found[name] for name in CHECKPOINTS if name in found]
    if not chosen:
        inside = find_runs(p)
        hint = (
            f"; it holds {len(inside)} run folder(s): "
            + ", ".join(str(r.relative_to(p)) for r in inside[:6])
            + (", ..." if len(inside) > 6 else "")
            + " (pass those)"
            if inside
            else " (examples/train.py and examples/lightning/train.py write them)"
        )
        raise ValueError(
            f"{given!r} is a folder but not a vaekit run: it has no "
            f"{' or '.join(CHECKPOINTS)}{hint}"
        )
    if chosen[0].name != CHECKPOINTS[0]:
        notes.append(f"no {CHECKPOINTS[0]}; using {chosen[0].name}")
    run = RunFolder(path=p, name=p.name, checkpoint=chosen[0], checkpoints=found, notes=notes)
    run.config = _read_json(p / "config.json", notes)
    run.metrics = _read_json(p / "metrics.json", notes)
    if not run.metrics:
        notes.append("no metrics.json (the run stopped before its final metrics)")
    history = p / "history.csv"
    if history.is_file():
        try:
            run.history = read_history(history)
        except (OSError, ValueError, csv.Error) as err:
            notes.append(f"history.csv is unreadable ({err}); no curves")
    return run


def find_runs(root: str | os.PathLike, *, max_depth: int = 3) -> list[Path]:
    """Run folders (folders with a model file) at or below ``root``, sorted by path: e.g. the
    jobs of a Hydra sweep (``runs/<stamp>-<name>/0``, ``.../1``) or a whole ``runs/``.

    Hidden folders (``.hydra``) are skipped; a run folder's subfolders are not searched.

    Example:
        >>> import os, tempfile, vaekit as vk
        >>> vae = vk.VAE(vk.VAEConfig(in_channels=1, image_size=16, widths=(4, 8),
        ...                           latent_dim=4, attention_at=()))
        >>> root = tempfile.mkdtemp()
        >>> for job in ("0", "1"):
        ...     os.makedirs(os.path.join(root, job))
        ...     vae.save(os.path.join(root, job, "best.safetensors"))
        >>> [p.name for p in vk.runs.find_runs(root)]
        ['0', '1']
    """
    root = Path(root)
    if not root.is_dir():
        return []
    if _is_run(root):
        return [root]
    if max_depth <= 0:
        return []
    found: list[Path] = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found += find_runs(child, max_depth=max_depth - 1)
    return found
