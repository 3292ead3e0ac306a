"""Discrete action tokens (AutoVLA-style): a k-means codebook of per-step motions ``(Δx, Δy, Δθ)``.

Each token is one step of ``dt_s`` (0.5 s) expressed in the frame of the previous pose, so a token sequence composes
into a trajectory from the ego origin. Encoding is greedy and closed-loop: each step picks the codeword whose composed
pose lands nearest the target pose, so quantisation errors do not accumulate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


class ActionTokenError(ValueError):
    """An action-token sequence or codebook file is malformed."""


# Heading errors are weighted like metres × this factor when choosing codewords (0.1 rad ≈ 1 m).
HEADING_WEIGHT = 10.0


def poses_to_deltas(poses: np.ndarray) -> np.ndarray:
    """Per-step motions ``[N, 3]`` of ego-frame poses ``[N, 3]``, each in the previous pose's frame."""
    poses = np.asarray(poses, dtype=np.float64)
    previous = np.vstack([np.zeros(3), poses[:-1]])
    dx, dy = poses[:, 0] - previous[:, 0], poses[:, 1] - previous[:, 1]
    c, s = np.cos(previous[:, 2]), np.sin(previous[:, 2])
    dtheta = np.arctan2(np.sin(poses[:, 2] - previous[:, 2]), np.cos(poses[:, 2] - previous[:, 2]))
    return np.column_stack([c * dx + s * dy, -s * dx + c * dy, dtheta])


def deltas_to_poses(deltas: np.ndarray) -> np.ndarray:
    """Compose per-step motions ``[N, 3]`` into poses ``[N, 3]`` starting at the origin."""
    poses = np.zeros((len(deltas), 3))
    x = y = heading = 0.0
    for i, (dx, dy, dtheta) in enumerate(np.asarray(deltas, dtype=np.float64)):
        x += np.cos(heading) * dx - np.sin(heading) * dy
        y += np.sin(heading) * dx + np.cos(heading) * dy
        heading += dtheta
        poses[i] = (x, y, heading)
    return poses


class ActionCodebook:
    """``centers [K, 3]`` of per-step motions; token ``k`` means "move by ``centers[k]``"."""

    def __init__(self, centers: np.ndarray, dt_s: float = 0.5) -> None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != 3 or len(centers) == 0:
            raise ActionTokenError(f"codebook centers must have shape [K, 3], got {list(centers.shape)}")
        self.centers = centers
        self.dt_s = dt_s

    @property
    def size(self) -> int:
        return len(self.centers)

    @classmethod
    def fit(cls, trajectories: np.ndarray, size: int, *, dt_s: float = 0.5, seed: int = 0) -> ActionCodebook:
        """k-means (scikit-learn) over the per-step motions of ``trajectories [M, N, 3]``."""
        from sklearn.cluster import KMeans

        deltas = np.concatenate([poses_to_deltas(t) for t in np.asarray(trajectories, dtype=np.float64)])
        unique = np.unique(np.round(deltas, 4), axis=0)
        size = min(size, len(unique))
        if size < 1:
            raise ActionTokenError("cannot fit a codebook on no motion samples")
        scale = np.array([1.0, 1.0, HEADING_WEIGHT])
        kmeans = KMeans(n_clusters=size, n_init=3, random_state=seed).fit(deltas * scale)
        return cls(kmeans.cluster_centers_ / scale, dt_s)

    def encode(self, poses: np.ndarray) -> np.ndarray:
        """Token ids ``[N]`` for poses ``[N, 3]`` (closed-loop greedy: each step corrects the drift so far)."""
        poses = np.asarray(poses, dtype=np.float64)
        ids = np.zeros(len(poses), dtype=np.int64)
        current = np.zeros(3)
        for i, target in enumerate(poses):
            c, s = np.cos(current[2]), np.sin(current[2])
            candidates = np.column_stack(
                [
                    current[0] + c * self.centers[:, 0] - s * self.centers[:, 1],
                    current[1] + s * self.centers[:, 0] + c * self.centers[:, 1],
                    current[2] + self.centers[:, 2],
                ]
            )
            heading_error = np.arctan2(np.sin(candidates[:, 2] - target[2]), np.cos(candidates[:, 2] - target[2]))
            distance = np.hypot(candidates[:, 0] - target[0], candidates[:, 1] - target[1])
            cost = distance + HEADING_WEIGHT * np.abs(heading_error)
            ids[i] = int(np.argmin(cost))
            current = candidates[ids[i]]
        return ids

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Poses ``[N, 3]`` for token ids ``[N]``; an out-of-range id is an ActionTokenError."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or ((ids < 0) | (ids >= self.size)).any():
            raise ActionTokenError(f"action token ids must be a 1-D sequence in [0, {self.size}), got {ids.tolist()}")
        return deltas_to_poses(self.centers[ids])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        save_file({"centers": self.centers, "dt_s": np.array([self.dt_s])}, str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActionCodebook:
        tensors = load_file(str(path))
        if "centers" not in tensors:
            raise ActionTokenError(f"{path}: not an action codebook (no 'centers' tensor)")
        return cls(tensors["centers"], float(tensors.get("dt_s", np.array([0.5]))[0]))
