"""The paper's latency table on this CPU with the tiny default: prefill, reasoning tokens/s, flow planning at
1/2/5/10 steps (history init) and 10 steps (noise init), and autoregressive action tokens at 10 and 50 actions —
measured side by side in one run on the same KV cache."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from ..model import ActionCodebook, ActionExpertConfig, SpanVLA, SpanVLAConfig, train_tokenizer
from ..model.spanvla import Observation
from ..model.tokenizer import FAST_MODE_TEXT, THINK_END, THINK_START
from .common import machine_info, median_seconds

CORPUS = [
    f"{THINK_START} critical: vehicle ahead in the ego lane, braking. decision: decelerate, keep lane {THINK_END}",
    f"{THINK_START} critical: vehicle front-left cutting in. decision: yield, nudge right {THINK_END}",
    FAST_MODE_TEXT,
    "command: go straight. speed 12.0 m/s, acceleration -0.5 m/s2, history (-18.0,0.0) (-12.0,0.0) (-6.0,0.0)",
]


def tiny_model(num_poses: int = 10, seed: int = 0) -> SpanVLA:
    """The tiny default architecture with random weights (latency does not depend on training)."""
    torch.manual_seed(seed)
    config = SpanVLAConfig(expert=ActionExpertConfig(num_poses=num_poses))
    return SpanVLA(config, bench_tokenizer(), random_codebook(seed)).eval()


def bench_tokenizer():
    return train_tokenizer(CORPUS * 50, vocab_size=512, num_action_tokens=256)


def random_codebook(seed: int = 0, size: int = 256) -> ActionCodebook:
    """Per-step motions drawn at random (no k-means: a GPU image without scikit-learn builds it too)."""
    rng = np.random.default_rng(seed)
    return ActionCodebook(
        np.column_stack([rng.uniform(0, 5, size), rng.uniform(-0.1, 0.1, size), rng.uniform(-0.05, 0.05, size)])
    )


def run(repeats: int = 15) -> dict[str, Any]:
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model = tiny_model()
    rng = np.random.default_rng(0)
    history = np.array([[-18.0, 0.0, 0.0], [-12.0, 0.0, 0.0], [-6.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    observation = Observation(
        rng.integers(0, 255, (3, 112, 112, 3), dtype=np.uint8), "go straight", 12.0, -0.5, history
    )
    input_ids, pixel_values, grid = model.prompt(observation)
    with torch.no_grad():
        prefill_s = median_seconds(lambda: model._forward(input_ids, pixel_values, grid), repeats=repeats)
        prefilled = model._forward(input_ids, pixel_values, grid).past_key_values
        reasoning = model.reason(observation, max_new_tokens=8)

        decode_tokens = 32

        def decode() -> None:
            past, token = copy.deepcopy(prefilled), torch.tensor([[model.tokenizer.eos_token_id]])
            for _ in range(decode_tokens):
                past = model._forward(token, past=past).past_key_values

        decode_s = median_seconds(decode, repeats=max(repeats // 3, 3))
        history_t = torch.tensor(history[None], dtype=torch.float32)
        kv = reasoning.kv_layers
        plan = {}
        for steps in (1, 2, 5, 10):
            plan[f"plan_ms_median_{steps}_steps"] = 1e3 * median_seconds(
                lambda s=steps: model.flow_sample(kv, history_t, num_steps=s), repeats=repeats
            )
        plan["plan_noise_init_ms_median_10_steps"] = 1e3 * median_seconds(
            lambda: model.flow_sample(kv, history_t, num_steps=10, init="noise"), repeats=repeats
        )

        def ar(num_actions: int) -> float:
            samples = []
            for _ in range(max(repeats // 3, 3)):
                past = copy.deepcopy(prefilled)
                start = time.perf_counter()
                model.decode_actions(past, num_actions)
                samples.append(time.perf_counter() - start)
            return float(np.median(samples))

        ar10_ms, ar50_ms = 1e3 * ar(10), 1e3 * ar(50)
        model50 = tiny_model(num_poses=50)
        model50.vlm = model.vlm  # same VLM and cache; only the expert's horizon differs
        flow50_ms = 1e3 * median_seconds(lambda: model50.flow_sample(kv, history_t), repeats=repeats)
    default_steps = model.config.expert.num_steps
    flow10_ms = plan[f"plan_ms_median_{default_steps}_steps"]
    return {
        "benchmark": "model",
        "created_unix": time.time(),
        "vlm_parameters": sum(p.numel() for p in model.vlm.parameters()),
        "expert_parameters": sum(p.numel() for p in model.expert.parameters()),
        "prompt_tokens": int(input_ids.shape[1]),
        "cameras_x_frames": int(observation.images.shape[0]),
        "prefill_ms_median": 1e3 * prefill_s,
        "reasoning_tokens_per_s": decode_tokens / decode_s,
        **plan,
        "plan_ms_median": flow10_ms,
        "flow_steps_default": default_steps,
        "ar_waypoints_ms_median": ar10_ms,
        "ar50_waypoints_ms_median": ar50_ms,
        "flow50_plan_ms_median": flow50_ms,
        "ar_over_flow_ratio": ar10_ms / flow10_ms,
        "ar50_over_flow50_ratio": ar50_ms / flow50_ms,
        "paper": {"ar_over_flow_ratio": 5.0, "ar50_over_flow50_ratio": 21.0},
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": machine_info(),
    }
