"""Agreement with NAVSIM's own code: PDMS (v1.1), EPDMS (v2) and the simulated motion on the same inputs.

The golden figures were computed by NAVSIM's PDMSimulator and PDMScorer on the scenes and plans of
``navsim_cases.py`` (see the file's ``source``); this project's scorer must give the same numbers.
"""

import json

import numpy as np
import pytest
from navsim_cases import DATA, cases

from spanvla_ros.eval import EPDMS_METRICS, PDMS_METRICS, score_trajectories

GOLDEN = json.loads((DATA / "navsim_golden.json").read_text())


@pytest.fixture(scope="module")
def scored():
    pairs = cases()
    assert [scene.token for scene, _ in pairs] == [case["token"] for case in GOLDEN["cases"]]
    golden = GOLDEN["cases"]
    return [(score_trajectories(scene, plans), case) for (scene, plans), case in zip(pairs, golden, strict=True)]


def test_pdms_and_epdms_equal_navsims_on_at_least_99_5_percent_of_plans(scored):
    total = pdms_equal = epdms_equal = 0
    for result, case in scored:
        for index, golden in enumerate(case["rows"]):
            total += 1
            pdms_equal += abs(result.metrics["pdms"][index] - golden["pdms"]) < 1e-6
            epdms_equal += abs(result.metrics["epdms"][index] - golden["epdms"]) < 1e-6
    assert total == 930
    assert pdms_equal / total >= 0.995, f"PDMS equal on {pdms_equal}/{total}"
    assert epdms_equal / total >= 0.995, f"EPDMS equal on {epdms_equal}/{total}"


def test_every_sub_metric_matches(scored):
    mismatches = []
    for result, case in scored:
        for index, golden in enumerate(case["rows"]):
            for name in PDMS_METRICS + EPDMS_METRICS:
                if name != "ec" and abs(result.metrics[name][index] - golden[name]) > 1e-6:
                    mismatches.append((case["token"], index, name, result.metrics[name][index], golden[name]))
    assert len(mismatches) <= 5, mismatches[:10]


def test_simulated_positions_within_10_cm_of_navsims_simulator(scored):
    worst = 0.0
    for result, case in scored:
        for index, golden in enumerate(case["rows"]):
            if "xy" in golden:
                worst = max(worst, float(np.abs(result.states[index, :, :2] - np.array(golden["xy"])).max()))
    assert worst < 0.10, worst


def test_the_cases_exercise_every_metric(scored):
    """A cross-check only means something where the metrics fail: each one does on some plans."""
    for name in ("nc", "dac", "ep", "ttc", "c", "nc_v2", "ddc", "tlc", "ep_v2", "ttc_v2", "lk", "hc"):
        failing = sum(int(golden[name] < 1.0) for _, case in scored for golden in case["rows"])
        assert failing >= 5, name
