"""``spanvla bench gpu`` on this CPU: the tiny preset, and Qwen2.5-VL-3B's shapes (width, heads, KV heads, vocabulary,
vision tower) with the depth cut to two layers. The CUDA runs are in test_cuda.py and bench/gpu_check.sh."""

import json
import math
import subprocess
import sys

import pytest

from spanvla_ros.benchmarks.gpu import build, run

KEYS = ("vision_ms", "prefill_ms", "decode_ms_per_token", "direct_decode_ms_per_token", "flow_ms", "direct_flow_ms",
        "fast_cycle_ms", "slow_cycle_ms", "pipeline_over_direct_decode", "peak_memory_mb")  # fmt: skip


def test_tiny_preset_writes_every_figure():
    result = run(preset="tiny", device="cpu", images=2, repeats=3, slow_tokens=4)
    for key in KEYS:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["graphs"] == {"decode": "eager", "flow": "eager"}
    assert result["images"] == 2 and result["prompt_tokens"] > 2 * 16  # two images of 16 merged tokens each


@pytest.mark.slow
def test_qwen_3b_shapes_run_through_the_pipeline_via_the_cli(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, "-m", "spanvla_ros.cli", "bench", "gpu", "--preset", "qwen2.5-vl-3b", "--images", "1",
               "--image-size", "112", "--num-layers", "2", "--vision-depth", "2", "--repeats", "2", "--slow-tokens",
               "3", "--precision", "bf16", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["precision"] == "bf16" and document["preset"] == "qwen2.5-vl-3b"
    assert all(math.isfinite(document[key]) for key in KEYS)


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
