"""Where the shipped checkpoints live: ``model:default`` is ``models/default`` installed to the package's share folder
(``<prefix>/share/spanvla_ros/models/default``), or the source checkout's ``models/default``."""

from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def default_checkpoint() -> Path:
    import sys

    # ament's search path first, then the source checkout, then the install prefix's share folder (pip, colcon).
    candidates = [SOURCE_ROOT / "models" / "default", Path(sys.prefix) / "share" / "spanvla_ros" / "models" / "default"]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.insert(0, Path(get_package_share_directory("spanvla_ros")) / "models" / "default")
        except (PackageNotFoundError, OSError):  # not installed, or AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(
        "the default checkpoint is missing: expected models/default (run `make weights` to train it) in "
        + " or ".join(str(c) for c in candidates)
    )


def resolve_model(spec: str) -> str:
    """A model artefact named as the tools take it: ``model:default`` (or ``default`` / empty) is the shipped
    checkpoint; ``model:PATH`` or ``PATH`` is that directory (a checkpoint, or an export for onnxruntime/tensorrt)."""
    if spec in ("model:default", "default", ""):
        return str(default_checkpoint())
    return spec.removeprefix("model:")
