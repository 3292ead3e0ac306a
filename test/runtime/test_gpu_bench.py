"""``spanvla bench gpu`` on this CPU: the tiny preset, and Qwen2.5-VL-3B's shapes (width, heads, KV heads, vocabulary,
vision tower) with the depth cut to two layers. The CUDA runs are in test_cuda.py and bench/gpu_check.sh."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanvla_ros.benchmarks.gpu import build, run

KEYS = ("vision_ms", "prefill_ms", "decode_ms_per_token", "direct_decode_ms_per_token", "flow_ms", "direct_flow_ms",
        "fast_cycle_ms", "slow_cycle_ms", "pipeline_over_direct_decode", "peak_memory_mb")  # fmt: skip


def test_tiny_preset_writes_every_figure():
    result = run(preset="tiny", device="cpu", images=2, repeats=3, slow_tokens=4)
    for key in KEYS:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["graphs"] == {"decode": "eager", "flow": "eager", "vision": "eager"}
    assert result["images"] == 2 and result["prompt_tokens"] > 2 * 16  # two images of 16 merged tokens each


@pytest.mark.slow
def test_the_prepared_gpu_check_runs_its_steps_here(tmp_path):
    """bench/gpu_check.sh in its dry run (CPU; the 3B preset cut to two layers): every step runs and the summary
    lists each target, so the script works the first time a GPU machine runs it."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "GPU_CHECK_DRY_RUN": "1"}
    result = subprocess.run(["bash", "bench/gpu_check.sh"], capture_output=True, text=True, timeout=1200, cwd=root,
                            env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for step in ("gpu_tests", "tiny_cuda", "tiny_cpu", "qwen3b_bf16"):
        assert json.loads((tmp_path / f"{step}.status.json").read_text())["exit"] == 0, step
    big = json.loads((tmp_path / "qwen3b_cuda_bf16.json").read_text())
    assert big["preset"] == "qwen2.5-vl-3b" and big["precision"] == "bf16"
    assert all(math.isfinite(big[key]) for key in KEYS)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["rows"]) == 12 and all(row["measured"] is not None for row in summary["rows"])


def test_the_3b_preset_has_qwen2_5_vl_3b_parameter_count():
    import torch

    with torch.device("meta"):
        model = build("qwen2.5-vl-3b", "meta", "bf16")
    text = model.vlm.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads, text.vocab_size) == (
        2048, 36, 2, 151936)  # fmt: skip
    vlm_parameters = sum(p.numel() for p in model.vlm.parameters())
    assert 3.7e9 < vlm_parameters < 3.8e9  # Qwen2.5-VL-3B-Instruct: 3.75 B (embeddings tied)
    with pytest.raises(ValueError, match="unknown preset"):
        build("qwen-7b", "cpu", "fp32")
