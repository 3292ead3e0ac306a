#!/usr/bin/env python3
"""Export a SpanVLA checkpoint to ONNX graphs (same as `spanvla export onnx`)."""

import sys

from spanvla_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", "onnx", *sys.argv[1:]]))
