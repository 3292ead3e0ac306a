#!/usr/bin/env bash
# Create .venv and install everything the project needs, then install the package the way colcon would (share files
# under .venv/share/spanvla_ros, the ament index marker, executables also under .venv/lib/spanvla_ros).
#
# Re-running is cheap: dependencies are reinstalled only when a requirements file changed (a stamp records their hash).
# With a sourced ROS 2 installation that provides rclpy (ROS_DISTRO set), the venv sees the system site-packages and
# the PyPI ROS wheels are not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

"$PYTHON" - <<'PY' || { echo "setup: Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

use_system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c "import rclpy" >/dev/null 2>&1; then
  use_system_ros=1
  echo "setup: using the sourced ROS 2 ${ROS_DISTRO} installation's rclpy and messages"
fi

if [ ! -x "$VENV/bin/python" ]; then
  venv_args=()
  [ "$use_system_ros" = 1 ] && venv_args+=(--system-site-packages)
  if ! "$PYTHON" -m venv "${venv_args[@]}" "$VENV" 2>/dev/null; then
    # Debian/Ubuntu ship venv separately; install it when we may.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "setup: installing python3-venv with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev >/dev/null
      rm -rf "$VENV"
      "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
    else
      echo "setup: '$PYTHON -m venv' failed: install the python3-venv package (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
requirements=(requirements.txt)
[ "$use_system_ros" = 0 ] && requirements+=(requirements-ros.txt)
stamp="$VENV/.requirements.sha256"
want=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing dependencies into $VENV (first run takes a minute or two)"
  "${PIP[@]}" install -q --upgrade pip
  args=()
  for r in "${requirements[@]}"; do args+=(-r "$r"); done
  "${PIP[@]}" install -q "${args[@]}"
  echo "$want" > "$stamp"
fi

# The package itself, installed (not editable: pip's editable mode skips data files, which ament_index needs).
"${PIP[@]}" install -q --no-deps --no-build-isolation --force-reinstall . >/dev/null
# ros2 run looks for executables in <prefix>/lib/<package>; mirror the console scripts there as colcon does.
mkdir -p "$VENV/lib/spanvla_ros"
for exe in spanvla planner_node sim_node; do
  ln -sf "../../bin/$exe" "$VENV/lib/spanvla_ros/$exe"
done
rm -rf build spanvla_ros.egg-info
echo "setup: ready ($("$VENV/bin/python" --version), $VENV)"
