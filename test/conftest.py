"""Test environment: DDS discovery on localhost only, one ROS domain per xdist worker, headless plotting."""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
os.environ["ROS_DOMAIN_ID"] = str(40 + int(_worker.removeprefix("gw") or 0))
