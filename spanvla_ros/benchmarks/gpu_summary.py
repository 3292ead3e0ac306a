"""``python -m spanvla_ros.benchmarks.gpu_summary DIR``: the GPU check's figures (``bench/gpu_check.sh``) against the
targets of the GPU issue, as a table and ``DIR/summary.json``. A missing run is reported as missing, not passed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: (run file, figure, target, "max" = at most / "ratio<" = below another run's figure)
TARGETS = [
    ("qwen3b_cuda_bf16", "vision_plus_prefill_ms", 40.0),
    ("qwen3b_cuda_bf16", "decode_ms_per_token", 5.0),
    ("qwen3b_cuda_bf16", "flow_ms", 3.0),
    ("qwen3b_cuda_bf16", "fast_cycle_ms", 50.0),
    ("qwen3b_cuda_bf16", "slow_cycle_ms", 130.0),
    ("qwen3b_cuda_bf16", "pipeline_over_direct_decode", 1.3),
    ("tiny_cuda", "pipeline_over_direct_decode", 1.3),
    ("tiny_cpu", "pipeline_over_direct_decode", 1.3),
]
COMPARED = ["fast_cycle_ms", "slow_cycle_ms", "decode_ms_per_token", "flow_ms"]


def summarise(directory: Path) -> dict:
    runs = {}
    for path in sorted(directory.glob("*.json")):
        if path.name in ("env.json", "summary.json") or path.name.endswith(".status.json"):
            continue
        document = json.loads(path.read_text())
        if "vision_ms" in document and "prefill_ms" in document:
            document["vision_plus_prefill_ms"] = document["vision_ms"] + document["prefill_ms"]
        runs[path.stem] = document
    rows = []
    for run, figure, target in TARGETS:
        value = runs.get(run, {}).get(figure)
        rows.append({"run": run, "figure": figure, "target_max": target, "measured": value,
                     "met": None if value is None else value <= target})  # fmt: skip
    for figure in COMPARED:
        cuda, cpu = runs.get("tiny_cuda", {}).get(figure), runs.get("tiny_cpu", {}).get(figure)
        rows.append({"run": "tiny cuda vs cpu", "figure": figure, "target_max": cpu, "measured": cuda,
                     "met": None if cuda is None or cpu is None else cuda < cpu})  # fmt: skip
    graphs = {run: document.get("graphs") for run, document in runs.items()}
    return {"rows": rows, "graphs": graphs, "runs": sorted(runs)}


def main(argv: list[str]) -> int:
    directory = Path(argv[0] if argv else "bench/results/gpu")
    summary = summarise(directory)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in summary["rows"]:
        measured = "missing" if row["measured"] is None else f"{row['measured']:.3f}"
        target = "-" if row["target_max"] is None else f"{row['target_max']:.3f}"
        verdict = {True: "met", False: "MISSED", None: "?"}[row["met"]]
        print(f"{row['run']:<20} {row['figure']:<30} {measured:>10}  target ≤ {target:>8}  {verdict}")
    print("graphs:", json.dumps(summary["graphs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
