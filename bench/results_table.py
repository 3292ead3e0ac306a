#!/usr/bin/env python3
"""Print the README results table (the paper's Fig. 4a on our world) from the JSON results under bench/results/."""

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# (label, planner key in the open-loop reports (a model key matches by its path's end), closed-loop report)
ROWS = [
    ("constant velocity", "constant-velocity", "closed_loop_constant-velocity.json"),
    ("expert (PDM-Closed style)", "expert", "closed_loop_expert.json"),
    ("shipped `model:default`", "model:models/default", "closed_loop_model-default.json"),
]
#: The training ladder re-trained with the current code (``ladder_*.json``): SFT, then GRPO on positives, + negatives,
#: + recovery (the recipe's mix).
LADDER = [
    ("SpanVLA, SFT only", "model:sft_bridge/checkpoint"),
    ("+ GRPO, positives only", "model:pos/grpo/checkpoint"),
    ("+ GRPO, + negatives", "model:neg/grpo/checkpoint"),
    ("+ GRPO, + negatives + recovery", "model:train/grpo/checkpoint"),
]


def planner(report: dict, key: str) -> dict | None:
    planners = report["planners"]
    if key in planners:
        return planners[key]
    if key.startswith("model:"):
        tail = key.removeprefix("model:")
        return next((v for k, v in planners.items() if k.startswith("model:") and k.endswith(tail)), None)
    return None


def main() -> None:
    open_loop = json.loads((RESULTS / "open_loop.json").read_text())
    recovery = json.loads((RESULTS / "open_loop_recovery.json").read_text())
    n = next(iter(open_loop["planners"].values()))["n_scenes"]
    m = next(iter(recovery["planners"].values()))["n_scenes"]
    print(
        f"| planner | PDMS ({n} scenes) | EPDMS | PDMS, recovery subset ({m}) | closed-loop driving score | "
        "collision rate | validator rejections (closed loop) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, key, closed in ROWS:
        ol, rec = planner(open_loop, key), planner(recovery, key)
        cl = json.loads((RESULTS / closed).read_text()) if closed and (RESULTS / closed).is_file() else None
        validation = (cl or {}).get("validation")
        core = (cl or {}).get("core_counters")
        if core:  # through the planning core: what its validator rejected of the model's proposals
            validation = {
                "plans": core["plans"],
                "rejection_rate": core["validator_rejections"] / max(core["plans"], 1),
            }
        cells = [f"{ol['pdms']:.3f}" if ol else "—", f"{ol['epdms']:.3f}" if ol else "—",
                 f"{rec['pdms']:.3f}" if rec else "—",
                 f"{cl['driving_score']:.3f} ({cl['episodes']} ep.)" if cl else "—",
                 f"{cl['collision_rate']:.2f}" if cl else "—",
                 f"{validation['rejection_rate']:.1%} of {validation['plans']}" if validation else "—"]  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |")
    ladder = RESULTS / "ladder_open_loop.json"
    if ladder.is_file():
        ladder_ol = json.loads(ladder.read_text())
        ladder_rec = json.loads((RESULTS / "ladder_open_loop_recovery.json").read_text())
        for label, key in LADDER:
            ol, rec = planner(ladder_ol, key), planner(ladder_rec, key)
            cells = [f"{ol['pdms']:.3f}", f"{ol['epdms']:.3f}", f"{rec['pdms']:.3f}", "—", "—", "—"]
            print(f"| {label} (re-trained) | " + " | ".join(cells) + " |")


def drive_table() -> None:
    """The shipped checkpoint against constant velocity and the expert, from ``spanvla bench drive``."""
    path = RESULTS / "drive.json"
    if not path.is_file():
        return
    drive = json.loads(path.read_text())
    ol, rec, cl = drive["open_loop"], drive["recovery"], drive["closed_loop"]
    n, m, e = ol["model"]["n_scenes"], rec["model"]["n_scenes"], cl["model"]["episodes"]
    print(
        f"\n| planner | PDMS ({n} scenes) | EPDMS | ADE (m) | PDMS, recovery ({m}) | closed-loop DS ({e} ep.) | "
        "collision rate | off-road rate |"
    )
    print("|---|---|---|---|---|---|---|---|")
    labels = {
        "constant_velocity": "constant velocity",
        "expert": "expert (PDM-Closed style)",
        "model": "`model:default`",
    }
    for key, label in labels.items():
        cells = [f"{ol[key]['pdms']:.3f}", f"{ol[key]['epdms']:.3f}", f"{ol[key]['ade_m']:.2f}",
                 f"{rec[key]['pdms']:.3f}", f"{cl[key]['driving_score']:.3f}", f"{cl[key]['collision_rate']:.2f}",
                 f"{cl[key]['off_road_rate']:.2f}"]  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |")
    for key, row in ol.items():
        if key.startswith(("model_frames", "ladder_")) or key.endswith("_through_core"):
            gain = row.get("gain_over_previous") or row.get("minus_model")
            interval = (
                f" ({gain['mean']:+.3f}, 95 % CI [{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}])" if gain else ""
            )
            print(f"| {key} | {row['pdms']:.3f}{interval} | {row['epdms']:.3f} | {row.get('ade_m', 0):.2f} | | | | |")
    # Closed-loop references only: every one the run holds (their names changed as the core gained layers).
    for key in [k for k in cl if k not in labels]:
        if "minus_model" in cl[key]:
            gain = cl[key]["minus_model"]
            cells = (
                f"{cl[key]['driving_score']:.3f} ({gain['mean']:+.3f} vs the model, [{gain['ci95'][0]:+.3f}, "
                f"{gain['ci95'][1]:+.3f}]) | {cl[key]['collision_rate']:.2f} | {cl[key]['off_road_rate']:.2f}"
            )
            print(f"| {key} (closed loop only) | | | | | {cells} |")


if __name__ == "__main__":
    main()
    drive_table()
