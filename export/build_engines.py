#!/usr/bin/env python3
"""Build TensorRT engines from an ONNX export (same as `spanvla export engines`); run it on the target GPU."""

import sys

from spanvla_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", "engines", *sys.argv[1:]]))
