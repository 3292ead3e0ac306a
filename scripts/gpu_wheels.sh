#!/usr/bin/env bash
# Fill bench/gpu_wheels/ with what bench/gpu_check.sh needs beyond a CUDA PyTorch image, for a GPU machine that cannot
# reach PyPI. Usage: bash scripts/gpu_wheels.sh [PYTHON_VERSION]   (the GPU image's Python, e.g. 3.12; default: ours)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')}
PIP=${PIP:-.venv/bin/pip}
mkdir -p bench/gpu_wheels
# Pinned as in requirements.txt, with their dependencies except numpy (the image has it, and torch's).
"$PIP" download -q --dest bench/gpu_wheels --only-binary=:all: \
    --python-version "$VERSION" --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any $(cat bench/gpu_requirements.txt | grep -v '^#')
rm -f bench/gpu_wheels/numpy-*.whl
du -sh bench/gpu_wheels && ls bench/gpu_wheels
