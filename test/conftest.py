"""Test environment: DDS discovery on localhost only, one ROS domain per xdist worker, headless plotting."""

import os
import sys

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
os.environ["ROS_DOMAIN_ID"] = str(40 + int(_worker.removeprefix("gw") or 0))
# ament_index_python looks for installed packages under AMENT_PREFIX_PATH: the venv is the install prefix here.
_prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
if sys.prefix not in _prefixes:
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *_prefixes])
