"""SpanVLA at the paper's scale on a GPU (or this CPU): the architecture of a preset with random weights (latency does
not depend on training; nothing is downloaded), timed through the runtime pipeline the node runs and directly through
the model's own methods, side by side in one run.

* ``vision_ms``: the vision tower on the camera images; ``prefill_ms``: the language model over the prompt with the
  image embeddings in place (pipeline: into the preallocated KV buffer);
* ``decode_ms_per_token``: one reasoning token, pipeline (buffer written in place, CUDA graph on a GPU) and direct
  (transformers' forward on a growing ``DynamicCache``), and ``pipeline_over_direct_decode``;
* ``flow_ms``: the whole few-step flow on the cache (pipeline: CUDA graph on a GPU; direct: eager);
* ``fast_cycle_ms``: prefill with vision + the action marker + the flow, as fast mode plans;
  ``slow_cycle_ms``: the same with ``slow_tokens`` reasoning tokens before the marker;
* ``peak_memory_mb``: the device's peak allocation (CUDA) or the process's peak RSS (CPU).
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..inputs import patchify, prompt_text, rope_positions
from ..model import ActionExpertConfig, SpanVLA, SpanVLAConfig
from ..model.vlm import QWEN2_5_VL_3B, VLMConfig, vision_geometry
from ..runtime.backends.torch_backend import PRECISIONS, TorchBackend
from ..runtime.pipeline import SpanVLARuntime
from .common import machine_info, median_seconds
from .model import bench_tokenizer, random_codebook

PRESETS: dict[str, tuple[VLMConfig, ActionExpertConfig]] = {
    "tiny": (VLMConfig(), ActionExpertConfig()),
    # The action expert beside a 3B VLM: wider, reading every second of the 36 layers (18 blocks).
    "qwen2.5-vl-3b": (QWEN2_5_VL_3B, ActionExpertConfig(width=512, self_attention_heads=8)),
}
HISTORY = np.array([[-18.0, 0.0, 0.0], [-12.0, 0.0, 0.0], [-6.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def build(preset: str, device: str, precision: str, image_size: int | None = None, **shrink: int) -> SpanVLA:
    """The preset's SpanVLA with random weights, built on ``device`` in ``precision``; ``shrink`` overrides VLM sizes
    (``num_layers=2``… for a quick check of the shapes on a CPU)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    vlm, expert = PRESETS[preset]
    vlm = dataclasses.replace(vlm, **({"image_size": image_size} if image_size else {}), **shrink)
    torch.manual_seed(0)
    tokenizer, codebook = bench_tokenizer(), random_codebook()
    with torch.device(device):  # initialise on the device: a 3B model's random init on the CPU takes minutes
        model = SpanVLA(SpanVLAConfig(vlm=vlm, expert=expert), tokenizer, codebook)
    return model.to(dtype=PRECISIONS[precision]).eval()


def run(
    preset: str = "tiny",
    device: str = "cpu",
    images: int = 6,
    image_size: int | None = None,
    precision: str = "fp32",
    repeats: int = 10,
    slow_tokens: int = 15,
    cuda_graphs: bool | None = None,
    **shrink: int,
) -> dict[str, Any]:
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is visible to torch")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model = build(preset, device, precision, image_size, **shrink)
    build_s = time.perf_counter() - started
    backend = TorchBackend(model, device=device, num_images=images, precision=precision, cuda_graphs=cuda_graphs)
    runtime = SpanVLARuntime(backend, tokenizer_file=_tokenizer_file(model))
    # Random weights choose random tokens: no stop token ends a timed pass early.
    runtime.meta = {**runtime.meta, "action_marker_id": -1, "eos_token_id": -1}
    meta, config = runtime.meta, model.config.vlm
    frames = np.random.default_rng(0).integers(0, 255, (images, config.image_size, config.image_size, 3), np.uint8)
    pixel_values, grid = patchify(frames, vision_geometry(config))
    text = prompt_text("go straight", 12.0, -0.5, HISTORY, grid, config.spatial_merge_size)
    ids = np.asarray(runtime.tokenizer.encode(text).ids, np.int64)
    positions, delta = rope_positions(ids, meta["image_token_id"], grid, config.spatial_merge_size)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(fn: Callable[[], Any], count: int = repeats) -> float:
        def call() -> None:
            fn()
            sync()

        return 1e3 * median_seconds(call, repeats=count)

    result: dict[str, Any] = {
        "benchmark": "gpu",
        "created_unix": time.time(),
        "preset": preset,
        "device": device,
        "precision": precision,
        "images": images,
        "image_size": config.image_size,
        "prompt_tokens": int(len(ids)),
        "vlm_parameters": sum(p.numel() for p in model.vlm.parameters()),
        "expert_parameters": sum(p.numel() for p in model.expert.parameters()),
        "shrink": shrink,
        "build_s": build_s,
        "repeats": repeats,
    }
    with torch.no_grad():
        embeds = backend.encode_images(pixel_values)
        result["vision_ms"] = timed(lambda: backend.encode_images(pixel_values))
        room = len(ids) + slow_tokens + 1
        result["prefill_ms"] = timed(lambda: backend.finish(backend.prefill(ids[None], embeds, positions, room)[1]))

        # decode: the pipeline's step on its buffer, and transformers' own forward on a DynamicCache
        def pipeline_decode() -> None:
            _, cache = backend.prefill(ids[None], embeds, positions, room)
            try:
                sync()
                start = time.perf_counter()
                for _ in range(slow_tokens):
                    backend.decode(7, cache.length + delta, cache).argmax().item()  # the host reads the token
                sync()
                samples.append((time.perf_counter() - start) / slow_tokens)
            finally:
                backend.finish(cache)

        samples: list[float] = []
        for _ in range(max(repeats // 2, 3) + 1):
            pipeline_decode()
        result["decode_ms_per_token"] = 1e3 * float(np.median(samples[1:]))
        result["direct_decode_ms_per_token"] = 1e3 * _direct_decode(model, ids, embeds, positions, delta, slow_tokens,
                                                                     max(repeats // 2, 3), sync)  # fmt: skip
        result["pipeline_over_direct_decode"] = result["decode_ms_per_token"] / result["direct_decode_ms_per_token"]

        reasoning = runtime.reason(frames, "go straight", 12.0, -0.5, HISTORY, max_new_tokens=slow_tokens)
        result["flow_ms"] = timed(lambda: runtime.plan(reasoning, HISTORY))
        layers = reasoning.cache.layers()
        history_t = torch.tensor(HISTORY[None], dtype=torch.float32, device=device)
        result["direct_flow_ms"] = timed(lambda: model.flow_sample(layers, history_t))

        def cycle(tokens: int) -> None:
            plan = runtime.reason(frames, "go straight", 12.0, -0.5, HISTORY, max_new_tokens=tokens)
            runtime.plan(plan, HISTORY)

        result["fast_cycle_ms"] = timed(lambda: cycle(1))
        result["slow_cycle_ms"] = timed(lambda: cycle(slow_tokens + 1))  # reasoning, then the action marker
        result["slow_tokens"] = slow_tokens
    result["graphs"] = {**backend.graph_status, "vision": backend.vision_status}
    if cuda:
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
        result["cuda"] = torch.version.cuda
    else:
        result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["torch_threads"] = torch.get_num_threads()
    result["torch"] = torch.__version__
    result["machine"] = machine_info()
    return result


def _direct_decode(model: SpanVLA, ids, embeds, positions, delta, tokens: int, repeats: int, sync) -> float:
    """Seconds per token of transformers' forward on a growing DynamicCache after the same prefill."""
    from transformers.cache_utils import DynamicCache

    device = model.device
    input_ids = torch.from_numpy(ids[None]).to(device)
    language_model = model.vlm.model.language_model
    samples = []
    for _ in range(repeats + 1):
        cache = DynamicCache(config=language_model.config)
        language_model(
            inputs_embeds=model.embed_prompt(input_ids, embeds),
            position_ids=torch.from_numpy(positions).to(device),
            past_key_values=cache,
            use_cache=True,
        )
        sync()
        start = time.perf_counter()
        for step in range(tokens):
            position = torch.full((3, 1, 1), len(ids) + step + delta, device=device)
            out = language_model(
                inputs_embeds=language_model.embed_tokens(torch.tensor([[7]], device=device)),
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            )
            model.vlm.lm_head(out.last_hidden_state[:, -1]).argmax().item()
        sync()
        samples.append((time.perf_counter() - start) / tokens)
    return float(np.median(samples[1:]))


def _tokenizer_file(model: SpanVLA):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="spanvla_bench_gpu_")) / "tokenizer.json"
    model.tokenizer.backend_tokenizer.save(str(path))
    return path
