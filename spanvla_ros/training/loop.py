"""What every training stage shares: torchrun/DDP set-up, AdamW with warm-up + cosine, checkpoints that resume (model
as a SpanVLA checkpoint, optimizer and scheduler as safetensors + JSON: nothing is pickled), TensorBoard scalars and a
tqdm bar with loss and samples/s."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from .config import OptimConfig

# --- distributed ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> Distributed:
    """Join the process group when started by ``torchrun`` (gloo on CPU, nccl on GPUs); a plain process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    return Distributed(rank, world_size, device)


def wrap_ddp(module: nn.Module, env: Distributed) -> nn.Module:
    """DDP over the module when distributed (a 3B VLM would use FSDP instead: see README), else the module."""
    if not env.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def autocast(env: Distributed, enabled: bool):
    """bf16 autocast where the device supports it (CUDA with bf16); full precision on the CPU."""
    if enabled and env.device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# --- optimisation ----------------------------------------------------------------------------------------------------


def make_optimizer(params, optim: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires a gradient")
    optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)

    def schedule(step: int) -> float:
        if step < optim.warmup_steps:
            return (step + 1) / max(optim.warmup_steps, 1)
        progress = (step - optim.warmup_steps) / max(optim.steps - optim.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def clip_and_step(module: nn.Module, optimizer, scheduler, grad_clip: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


# --- checkpoints -----------------------------------------------------------------------------------------------------


def save_trainer_state(directory: Path, optimizer, scheduler, step: int, extra: dict[str, Any] | None = None) -> None:
    """Optimizer tensors as safetensors, everything else as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {
        f"{pid}.{name}": value.detach().contiguous()
        for pid, entry in state["state"].items()
        for name, value in entry.items()
        if torch.is_tensor(value)
    }
    scalars = {
        f"{pid}.{name}": value
        for pid, entry in state["state"].items()
        for name, value in entry.items()
        if not torch.is_tensor(value)
    }
    save_file(tensors or {"_empty": torch.zeros(1)}, str(directory / "optimizer.safetensors"))
    document = {
        "step": step,
        "param_groups": state["param_groups"],
        "scalars": scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": extra or {},
    }
    (directory / "trainer_state.json").write_text(json.dumps(document, indent=2, default=_jsonable))


def load_trainer_state(directory: Path, optimizer, scheduler) -> dict[str, Any]:
    """Restore optimizer and scheduler; return the JSON document (``step`` and ``extra``)."""
    document = json.loads((directory / "trainer_state.json").read_text())
    tensors = load_file(str(directory / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key == "_empty":
            continue
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in document["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in document["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and document.get("scheduler"):
        scheduler.load_state_dict(document["scheduler"])
    return document


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if torch.is_tensor(value):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the trainer state")


# --- logging ---------------------------------------------------------------------------------------------------------


class StageLogger:
    """TensorBoard scalars and a tqdm bar (loss, samples/s) on the main rank."""

    def __init__(self, stage: str, out_dir: Path, total_steps: int, env: Distributed, start_step: int = 0) -> None:
        from tqdm import tqdm

        self.env = env
        self.writer = None
        if env.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))
        self.bar = tqdm(total=total_steps, initial=start_step, desc=stage, unit="step", disable=not env.is_main)
        self.start = time.perf_counter()
        self.samples = 0

    def step(self, step: int, scalars: dict[str, float], samples: int) -> None:
        self.samples += samples * self.env.world_size
        rate = self.samples / max(time.perf_counter() - self.start, 1e-9)
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, step)
            self.writer.add_scalar("samples_per_s", rate, step)
        self.bar.update(1)
        self.bar.set_postfix(
            {**{k.split("/")[-1]: f"{v:.4g}" for k, v in list(scalars.items())[:3]}, "samples/s": f"{rate:.1f}"}
        )

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def write_weight_digest(module: nn.Module, out_dir: Path, env: Distributed) -> str:
    """Every rank records the sha256 of its trainable weights (``rank<r>.sha256``): after DDP they must agree."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(module.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    value = digest.hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{env.rank}.sha256").write_text(value + "\n")
    return value
