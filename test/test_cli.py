"""The ``spanvla`` command, run as a user would (a subprocess on this checkout's sources)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spanvla_ros.eval import METRIC_NAMES
from spanvla_ros.scene import Trajectory, save_trajectory, straight_poses

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"pdms", "epdms", *METRIC_NAMES}


def spanvla(*args, check=True):
    command = [sys.executable, "-m", "spanvla_ros.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=300, cwd=ROOT)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["eval"],
        ["eval", "score"],
        ["eval", "make-scene"],
        ["eval", "open-loop"],
        ["data"],
        ["data", "generate"],
        ["data", "from-bag"],
        ["data", "from-navsim"],
        ["data", "export-reasoning"],
        ["bench"],
        ["bench", "scorer"],
        ["bench", "model"],
        ["bench", "camera"],
    ],
)
def test_help_everywhere(args):
    out = spanvla(*args, "--help")
    assert "usage: spanvla" in out.stdout


def test_eval_score_prints_every_sub_metric(tmp_path):
    scene = tmp_path / "scene.json"
    spanvla("eval", "make-scene", "--kind", "red-light", "--out", scene)
    trajectory = save_trajectory(Trajectory(straight_poses(10.0, 10)), tmp_path / "plan.json")
    out = spanvla(
        "eval",
        "score",
        "--scene",
        scene,
        "--trajectory",
        trajectory,
        "--plot",
        tmp_path / "plot.png",
        "--out",
        tmp_path / "score.json",
    )
    result = json.loads(out.stdout)
    assert KEYS <= set(result)
    assert result["tlc"] == 0.0  # drives through the red light the reference stops for
    assert result["epdms"] == 0.0
    assert json.loads((tmp_path / "score.json").read_text())["pdms"] == result["pdms"]
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_score_with_a_previous_plan_reports_extended_comfort(tmp_path):
    scene = tmp_path / "scene.npz"
    spanvla("eval", "make-scene", "--kind", "straight", "--out", scene)
    steady = save_trajectory(Trajectory(straight_poses(10.0, 10)), tmp_path / "steady.npy")
    brake = save_trajectory(Trajectory(straight_poses(10.0, 10, accel_mps2=-3.0)), tmp_path / "brake.npy")
    out = spanvla(
        "eval", "score", "--scene", scene, "--trajectory", brake, "--previous", steady, "--previous-elapsed", "0"
    )
    assert json.loads(out.stdout)["ec"] == 0.0


def test_eval_score_reports_bad_input_without_a_traceback(tmp_path):
    scene = tmp_path / "scene.json"
    spanvla("eval", "make-scene", "--kind", "straight", "--out", scene)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"poses": [[1.0, float("nan"), 0.0]] * 10}).replace("NaN", "NaN"))
    out = spanvla("eval", "score", "--scene", scene, "--trajectory", bad, check=False)
    assert out.returncode == 1
    assert "non-finite" in out.stderr and "Traceback" not in out.stderr
    out = spanvla("eval", "score", "--scene", tmp_path / "missing.json", "--trajectory", bad, check=False)
    assert out.returncode == 1 and "scene file not found" in out.stderr
    short = save_trajectory(Trajectory(np.zeros((3, 3))), tmp_path / "short.json")
    out = spanvla("eval", "score", "--scene", scene, "--trajectory", short, check=False)
    assert out.returncode == 1 and "scoring needs at least 4.00 s" in out.stderr


def test_bench_scorer_writes_throughput_json(tmp_path):
    out_file = tmp_path / "scorer.json"
    spanvla("bench", "scorer", "--out", out_file, "--repeats", "3")
    result = json.loads(out_file.read_text())
    assert result["proposals_per_s_batch1"] > 0
    assert result["proposals_per_s_batch64"] > 0
    assert result["scene"]["agents"] == 20


def test_bench_model_writes_the_latency_table(tmp_path):
    out_file = tmp_path / "model.json"
    spanvla("bench", "model", "--out", out_file, "--repeats", "3")
    result = json.loads(out_file.read_text())
    for key in (
        "plan_ms_median",
        "ar_waypoints_ms_median",
        "ar_over_flow_ratio",
        "ar50_over_flow50_ratio",
        "reasoning_tokens_per_s",
        "prefill_ms_median",
        "plan_noise_init_ms_median_10_steps",
    ):
        assert result[key] > 0, key
    # Speed is a benchmark's business: the test checks the table is complete, not how fast this machine is.
    assert {f"plan_ms_median_{n}_steps" for n in (1, 2, 5, 10)} <= set(result)


def test_data_generate_rejects_an_unknown_environment_before_writing(tmp_path):
    out = spanvla(
        "data", "generate", "--out", tmp_path / "ds", "--episodes", "1", "--envs", "highway,moon", check=False
    )
    assert out.returncode == 1 and "unknown environment 'moon'" in out.stderr
    assert not (tmp_path / "ds").exists()


def test_data_generate_export_and_open_loop_eval(tmp_path):
    out = spanvla("data", "generate", "--out", tmp_path / "ds", "--episodes", "1", "--seed", "4", "--envs", "two-way")
    assert json.loads(out.stdout)["counts"]["total"] > 3
    spanvla("data", "export-reasoning", "--dataset", tmp_path / "ds", "--out", tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl").read_text().count("\n") == json.loads(out.stdout)["counts"]["total"]
    report = tmp_path / "ol.json"
    spanvla("eval", "open-loop", "--planner", "constant-velocity", "--episodes", "1", "--out", report)
    result = json.loads(report.read_text())
    assert result["n_scenes"] == 1 and KEYS <= set(result)
    assert report.with_suffix(".png").is_file()


def test_export_engines_without_tensorrt_says_why(tmp_path):
    out = spanvla("export", "engines", "--onnx", tmp_path, check=False)
    assert out.returncode == 1 and "cannot build TensorRT engines here" in out.stderr


def test_train_recipe_refuses_zero_evaluation_episodes_before_training():
    out = spanvla("train", "recipe", "--closed-loop-episodes", "0", check=False)
    assert out.returncode == 2 and "must be at least 1" in out.stderr


def test_train_stage_without_init_is_a_clear_error():
    out = spanvla("train", "sft-bridge", check=False)
    assert out.returncode == 1 and "needs --init" in out.stderr
