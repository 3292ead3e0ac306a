"""The soak benchmark's machinery on a short run (the 10-minute soak is `make soak`, not a test): it loads the real
node, and its JSON has the rate, latency, frame and memory numbers."""

import math

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_a_short_soak_measures_rate_latency_frames_and_memory(tmp_path):
    from spanvla_ros.benchmarks.soak import run

    result = run(
        duration_s=8.0,
        warmup_s=2.0,
        width=640,
        height=360,
        sample_every_s=1.0,
        camera_qos="reliable",
        log_dir=tmp_path,
        progress=False,
    )
    assert result["planner_exit_code"] == 0, (tmp_path / "planner.log").read_text()[-2000:]
    assert result["planning_rate_hz"] > 0 and result["planning_ms"]["n"] > 0
    assert result["validation"]["plans"] > 0 and "validator_rejections" in result["validation"]
    assert result["frames_published"] > 100 and result["frames_received_by_node"] > 0
    assert len(result["rss_mib_samples"]) >= 2 and math.isfinite(result["rss_growth_after_warmup"])
    assert result["camera"] == {"hz": 30.0, "width": 640, "height": 360, "encoding": "rgb8", "qos": "reliable"}
