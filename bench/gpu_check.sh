#!/usr/bin/env bash
# One prepared GPU check: on a machine with CUDA PyTorch it runs the GPU tests and `spanvla bench gpu` for both presets
# (tiny on CUDA and on this machine's CPU; Qwen2.5-VL-3B's shapes in bf16 with 6 × 448² images) in ≤ 5 minutes, and
# leaves JSON in $OUT (default bench/results/gpu/): env.json, gpu_tests.xml/.log, one JSON per run, summary.json
# (each figure against the issue's target).
#
# Run from the repository root:  bash bench/gpu_check.sh
# GPU_CHECK_DRY_RUN=1 runs the same steps on the CPU with the 3B preset cut to two layers (checks the script itself).
#
# What a bare CUDA PyTorch image needs besides torch, numpy and scipy (the lent H200 image has torch 2.11 + CUDA,
# numpy, scipy, opencv and transformers 5.17; no shapely, highway-env, rosbags or ROS — none of which this check
# imports): bench/gpu_requirements.txt (transformers 5.23, tokenizers, safetensors, PyYAML, tqdm, pytest) and their
# dependencies. When bench/gpu_wheels/ exists (fill it with `make gpu-wheels PYTHON_VERSION=3.x` on a machine with
# PyPI: ~30 MB; the GPU machine cannot reach PyPI) they are installed from there; otherwise what the image has is
# used, and env.json says which versions ran.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project itself, not installed
export TOKENIZERS_PARALLELISM=false

if [ -d bench/gpu_wheels ] && ls bench/gpu_wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --find-links bench/gpu_wheels -r bench/gpu_requirements.txt 2>&1 | tail -3 \
        || echo "wheel install failed: continuing with the image's packages (env.json says which)"
fi

DRY=${GPU_CHECK_DRY_RUN:-0}
"$PY" - "$OUT/env.json" "$DRY" <<'PYEOF'
import importlib, json, sys
import torch
env = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
if torch.cuda.is_available():
    env["gpu"] = torch.cuda.get_device_name()
    env["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
for name in ("transformers", "tokenizers", "safetensors", "numpy", "pytest", "onnxruntime", "tensorrt"):
    try:
        env[name] = importlib.import_module(name).__version__
    except Exception as exc:
        env[name] = f"missing: {exc}"
json.dump(env, open(sys.argv[1], "w"), indent=2)
print(json.dumps(env, indent=2))
if not torch.cuda.is_available() and sys.argv[2] != "1":
    sys.exit("no CUDA GPU visible to torch: nothing to check here")
PYEOF
[ $? -eq 0 ] || exit 1

status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, record the exit code, go on
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout $((limit * LIMIT_SCALE)) "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - start)) s"
    tail -5 "$OUT/$name.log"
    echo "{\"exit\": $rc, \"seconds\": $((SECONDS - start))}" >"$OUT/$name.status.json"
    [ $rc -eq 0 ] || status=1
}

DEVICE=cuda
BIG=(--images 6 --image-size 448 --repeats 5)
LIMIT_SCALE=1  # the limits fit the GPU's device budget
if [ "$DRY" = 1 ]; then
    LIMIT_SCALE=3  # a dry run checks that the steps run, on two CPU cores that may be busy: a 3B step once took 110 s
    DEVICE=cpu
    BIG=(--images 1 --image-size 112 --repeats 2 --num-layers 2 --vision-depth 2)
fi
step gpu_tests 110 "$PY" -m pytest -q -m gpu test/runtime/test_cuda.py -p no:cacheprovider -o addopts="" \
    --junitxml="$OUT/gpu_tests.xml"
step tiny_cuda 45 "$PY" -m spanvla_ros.cli bench gpu --preset tiny --device "$DEVICE" --images 6 \
    --out "$OUT/tiny_cuda.json"
step tiny_cpu 45 "$PY" -m spanvla_ros.cli bench gpu --preset tiny --device cpu --images 6 --out "$OUT/tiny_cpu.json"
step qwen3b_bf16 110 "$PY" -m spanvla_ros.cli bench gpu --preset qwen2.5-vl-3b --device "$DEVICE" --precision bf16 \
    "${BIG[@]}" --out "$OUT/qwen3b_cuda_bf16.json"

"$PY" -m spanvla_ros.benchmarks.gpu_summary "$OUT" | tee "$OUT/summary.txt"
exit $status
