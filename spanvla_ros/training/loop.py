"""What every training stage shares: torchrun set-up, DDP or FSDP2 on the ranks' devices, AdamW with warm-up +
cosine, checkpoints that resume (model as a SpanVLA checkpoint, saved unsharded; optimizer and scheduler as
safetensors + JSON: nothing is pickled), TensorBoard scalars and a tqdm bar with loss and samples/s."""

from __future__ import annotations

import faulthandler
import gc
import json
import math
import os
import signal
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
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <rank>`: a hung rank's stacks
    rank = dist.get_rank() if dist.is_initialized() else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    return Distributed(rank, world_size, device)


def wrap_ddp(module: nn.Module, env: Distributed) -> nn.Module:
    """DDP over the module (already on ``env.device``) when distributed, else the module."""
    if not env.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if env.device.type == "cuda":
        return DistributedDataParallel(module, device_ids=[env.device.index], output_device=env.device.index)
    return DistributedDataParallel(module)


def shard_fsdp(objective: nn.Module, vlm: nn.Module, env: Distributed, mixed_precision: bool) -> nn.Module:
    """FSDP2: every language-model decoder layer and vision block its own unit, then the objective (embeddings,
    LM head, the rest) the root; bf16 parameters with fp32 gradient reduction on a bf16 GPU. Call before making the
    optimizer (the parameters become sharded DTensors). Not distributed: the objective as it is."""
    if not env.enabled:
        return objective
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(env.device.type, (env.world_size,))
    bf16 = mixed_precision and env.device.type == "cuda" and torch.cuda.is_bf16_supported()
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    options = {"mesh": mesh, **({"mp_policy": policy} if policy else {})}
    for layer in vlm.model.language_model.layers:
        fully_shard(layer, **options)
    for block in vlm.model.visual.blocks:
        fully_shard(block, **options)
    fully_shard(objective, **options)
    return objective


def is_sharded(module: nn.Module) -> bool:
    return any(hasattr(p, "full_tensor") for p in module.parameters())


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state on the CPU, unsharded (a collective under FSDP: every rank calls it)."""
    if not is_sharded(module):
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(module: nn.Module, optimizer) -> dict[str, Any]:
    """The optimizer's state as ``optimizer.state_dict()`` gives it, unsharded under FSDP (keyed by parameter
    name then; a collective)."""
    if not is_sharded(module):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(module, optimizer, options=options)


def load_optimizer_state(module: nn.Module, optimizer, state: dict[str, Any]) -> None:
    if not is_sharded(module):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, state, options=StateDictOptions(full_state_dict=True))


def cleanup_distributed() -> None:
    """Barrier, then destroy the process group, without the deadlock a loaded machine hit at exit (a CI rank hung;
    its native stacks showed it). A gloo worker thread releases each finished work item, which needs the GIL; the
    group's destructor joins those threads while holding the GIL. So: callers drop their DDP wrappers first (the
    reducer would otherwise hold the group's last reference and destroy it whenever it is freed), and after the
    barrier the GIL is released for a moment so that the workers finish before the group is destroyed."""
    if not dist.is_initialized():
        return
    gc.collect()
    dist.barrier()
    time.sleep(0.5)
    dist.destroy_process_group()
    gc.collect()


def autocast(env: Distributed, enabled: bool):
    """bf16 autocast where the device supports it (CUDA with bf16); full precision on the CPU."""
    if enabled and env.device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# --- optimisation ----------------------------------------------------------------------------------------------------


def make_optimizer(params, optim: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``params`` (or parameter groups: dicts with ``params`` and their own ``lr``) that need a gradient."""
    params = list(params)
    if not (params and isinstance(params[0], dict)):
        params = [{"params": params}]
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("nothing to train: no parameter requires a gradient")
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)

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
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP: a DTensor


# --- checkpoints -----------------------------------------------------------------------------------------------------


def save_trainer_state(
    directory: Path,
    optimizer,
    scheduler,
    step: int,
    extra: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> None:
    """Optimizer tensors as safetensors, everything else as JSON (``optimizer_state``: an unsharded state to write
    instead of ``optimizer.state_dict()``, as :func:`full_optimizer_state` gives under FSDP)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = optimizer_state if optimizer_state is not None else optimizer.state_dict()
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


def load_trainer_state(directory: Path, optimizer, scheduler, module: nn.Module | None = None) -> dict[str, Any]:
    """Restore optimizer and scheduler (``module``: the sharded module under FSDP, whose optimizer state was saved
    unsharded by parameter name); return the JSON document (``step`` and ``extra``)."""
    document = json.loads((directory / "trainer_state.json").read_text())
    tensors = load_file(str(directory / "optimizer.safetensors"))
    state: dict[int | str, dict[str, Any]] = {}

    def parameter(key: str) -> tuple[int | str, str]:  # "3.exp_avg", or "vlm.model.embed.weight.exp_avg" (FSDP)
        pid, name = key.rsplit(".", 1)
        return (int(pid) if pid.isdigit() else pid), name

    for key, value in tensors.items():
        if key == "_empty":
            continue
        pid, name = parameter(key)
        state.setdefault(pid, {})[name] = value
    for key, value in document["scalars"].items():
        pid, name = parameter(key)
        state.setdefault(pid, {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in document["param_groups"]]
    full = {"state": state, "param_groups": groups}
    if module is not None:
        load_optimizer_state(module, optimizer, full)
    else:
        optimizer.load_state_dict(full)
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
    """TensorBoard scalars, the same as JSON lines (``scalars.jsonl``: learning curves without TensorBoard) and a
    tqdm bar (loss, samples/s) on the main rank."""

    def __init__(self, stage: str, out_dir: Path, total_steps: int, env: Distributed, start_step: int = 0) -> None:
        from tqdm import tqdm

        self.env = env
        self.writer = None
        if env.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            self.jsonl = out_dir / "scalars.jsonl"
            _keep_scalars_up_to(self.jsonl, start_step)  # a fresh start or a resume continues one curve
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
            with self.jsonl.open("a") as handle:
                handle.write(json.dumps({"step": step, **scalars, "samples_per_s": rate}) + "\n")
        self.bar.update(1)
        self.bar.set_postfix(
            {**{k.split("/")[-1]: f"{v:.4g}" for k, v in list(scalars.items())[:3]}, "samples/s": f"{rate:.1f}"}
        )

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _keep_scalars_up_to(file: Path, step: int) -> None:
    """Drop the lines of ``file`` logged after ``step`` (all of them for a fresh start)."""
    if file.is_file():
        lines = [line for line in file.read_text().splitlines() if json.loads(line)["step"] <= step]
        file.write_text("".join(f"{line}\n" for line in lines))


def write_weight_digest(module: nn.Module, out_dir: Path, env: Distributed) -> str:
    """Every rank records the sha256 of its trainable weights (``rank<r>.sha256``): after DDP they must agree."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(module.named_parameters()):
        if parameter.requires_grad:
            tensor = parameter.detach()
            tensor = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor  # FSDP: gather (collective)
            digest.update(name.encode())
            digest.update(tensor.float().cpu().contiguous().numpy().tobytes())
    value = digest.hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{env.rank}.sha256").write_text(value + "\n")
    return value
