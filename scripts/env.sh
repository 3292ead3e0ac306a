# Source this file to use the project's environment in a shell: `source scripts/env.sh`.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # keep DDS discovery on this machine
export AMENT_PREFIX_PATH="$_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export SDL_VIDEODRIVER=offscreen
export PATH="$_root/.venv/bin:$PATH"
unset _root
