"""Where and how the trainer runs: device, DDP (torchrun), autocast, RNG states.

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE > 1`` in the environment) every process
joins one process group: NCCL on CUDA (one GPU per process, ``LOCAL_RANK``), gloo on CPU.
Rank 0 alone writes files and prints; metrics are all-reduced so every rank takes the same
decisions (best checkpoint, early stopping, LR plateau, time budget).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """Mixed precision for the forward pass and loss (a no-op without ``--amp``)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def log(self, *parts: object) -> None:
        if self.main:
            tqdm.write(" ".join(map(str, ("[train]", *parts))))  # keeps a progress bar intact
            sys.stdout.flush()

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """All-reduce the gradients of parameters outside the DDP model (a learned σ)."""
        if self.distributed:
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world_size

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a float64 tensor over ranks (identity when not distributed)."""
        if self.distributed:
            values = values.to(self.device)
            dist.all_reduce(values)
        return values.cpu()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup(args) -> Runtime:
    """Pick the device, join the process group under torchrun, choose the autocast dtype."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available; use --device cpu")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    rt = Runtime(device, rank, world_size, local_rank, amp_dtype(args.amp, device))
    if world_size > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rt


def import_user_code(spec: str | None) -> list[str]:
    """Import ``--import`` modules (names or ``.py`` files), e.g. code that registers a block.

    A saved config that names a user block can only be built once that block is registered,
    so this runs before anything is built, on every rank, and again on ``--resume`` (the
    option is saved with the run).
    """
    imported = []
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        path = Path(item)
        try:
            if item.endswith(".py") or path.is_file():
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {str(path)!r}")
                name = path.stem
                spec_ = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec_)
                sys.modules[name] = module  # so pickling/lookups by module name work
                spec_.loader.exec_module(module)
            else:
                importlib.import_module(item)
        except Exception as err:  # the user's code: name it and say what went wrong
            raise ValueError(f"--import {item!r} failed: {type(err).__name__}: {err}") from err
        imported.append(item)
    return imported


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if device.type == "cuda":
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if amp == "auto":
        return None  # float32 on CPU
    if amp == "fp16":
        raise ValueError(
            "--amp fp16 needs a CUDA device (float16 with a GradScaler); on CPU use --amp none "
            "(the default) or --amp bf16"
        )
    warnings.warn(
        "--amp bf16 on CPU: only faster on CPUs with AVX512-BF16/AMX; otherwise use --amp none",
        stacklevel=2,
    )
    return torch.bfloat16


def cleanup(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, rank: int) -> torch.Generator:
    """Seed torch (the model's noise: seed + rank) and return the flip generator."""
    torch.manual_seed(seed + rank)
    return torch.Generator().manual_seed(10_007 * (seed + 1) + rank)


def rng_state(rt: Runtime, aug: torch.Generator) -> list[dict]:
    """Every rank's RNG states (gathered on all ranks), for an exact resume."""
    own = {"cpu": torch.get_rng_state(), "aug": aug.get_state()}
    if rt.device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(rt.device)
    if not rt.distributed:
        return [own]
    states: list = [None] * rt.world_size
    dist.all_gather_object(states, own)
    return states


def set_rng_state(rt: Runtime, states: list[dict], aug: torch.Generator) -> bool:
    """Restore this rank's RNG states; False if the run had another number of processes."""
    if len(states) != rt.world_size:
        return False
    own = states[rt.rank]
    torch.set_rng_state(own["cpu"])
    aug.set_state(own["aug"])
    if "cuda" in own and rt.device.type == "cuda":
        torch.cuda.set_rng_state(own["cuda"], rt.device)
    return True


def progress_enabled(setting: bool | None, rt: Runtime) -> bool:
    if not rt.main:
        return False
    return sys.stderr.isatty() if setting is None else setting
