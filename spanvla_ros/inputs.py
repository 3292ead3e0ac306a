"""Model inputs shared by training and every runtime backend, with numpy only (a deployment without torch uses them):
Qwen2-VL image patchify, the prompt text, and Qwen2-VL's 3-axis rope positions."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .text_format import IMAGE_PAD, VISION_END, VISION_START

# CLIP normalisation, as Qwen2-VL's image processor uses.
IMAGE_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
IMAGE_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
SYSTEM_PROMPT = "You are the driving planner of the ego vehicle. Reason about the scene, then act."


@dataclass(frozen=True)
class VisionGeometry:
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2


def square_image(image_rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``[H, W, 3]`` to a square and resize to ``[size, size, 3]`` (the model's camera input)."""
    import cv2

    h, w = image_rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(image_rgb[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def patchify(images: np.ndarray, geometry: VisionGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[I, H, W, 3]`` uint8 RGB → ``pixel_values [I·h·w, 3·t·p·p]`` float32 in Qwen2-VL's patch order and
    ``image_grid_thw [I, 3]`` int64; each still image is repeated over the temporal patch."""
    images = np.asarray(images)
    grid = image_grid(images.shape, images.dtype, geometry)
    mean, std = patch_normalisation(geometry)
    values = images.reshape(-1)[patch_order(images.shape, geometry)].astype(np.float32)
    return normalise_patches(values.reshape(-1, mean.shape[0]), mean, std), grid


def image_grid(shape: tuple[int, ...], dtype, geometry: VisionGeometry) -> np.ndarray:
    """``image_grid_thw [I, 3]`` of frames of ``shape`` ``[I, H, W, 3]`` (checked: uint8, sides a multiple of patch ×
    merge)."""
    if len(shape) != 4 or shape[-1] != 3 or np.dtype(dtype) != np.uint8:
        raise ValueError(f"images must be uint8 [I, H, W, 3], got {np.dtype(dtype)} {list(shape)}")
    count, height, width, _ = shape
    p, m = geometry.patch_size, geometry.spatial_merge_size
    if height % (p * m) or width % (p * m):
        raise ValueError(f"image size {height}x{width} must be a multiple of patch × merge = {p * m}")
    return np.array([[1, height // p, width // p]] * count, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def patch_order(shape: tuple[int, ...], geometry: VisionGeometry) -> np.ndarray:
    """For each element of ``pixel_values`` (flattened), its index in the flattened uint8 frames ``[I, H, W, 3]``:
    the patch rearrangement as one gather, which numpy on the host and torch on a GPU apply alike (cached: the
    camera's shape does not change)."""
    count, height, width, _ = shape
    p, m, t = geometry.patch_size, geometry.spatial_merge_size, geometry.temporal_patch_size
    index = np.arange(count * height * width * 3, dtype=np.int64).reshape(count, height, width, 3)
    index = np.repeat(index.transpose(0, 3, 1, 2)[:, None], t, axis=1)  # [I, t, C, H, W]
    gh, gw = height // p, width // p
    index = index.reshape(count, t, 3, gh // m, m, p, gw // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    order = np.ascontiguousarray(index).reshape(-1)
    order.flags.writeable = False
    return order


def patch_normalisation(geometry: VisionGeometry) -> tuple[np.ndarray, np.ndarray]:
    """CLIP's per-channel mean and std spread over a patch row ``[3·t·p·p]`` (channels are its slowest axis)."""
    per_channel = geometry.temporal_patch_size * geometry.patch_size**2
    return np.repeat(IMAGE_MEAN, per_channel), np.repeat(IMAGE_STD, per_channel)


def normalise_patches(values, mean, std):
    """Raw 0–255 patch values (float32, numpy or torch alike) → the vision tower's input."""
    return (values / 255.0 - mean) / std


def image_placeholder(grid_thw: np.ndarray, merge: int) -> str:
    """The text that stands for one image: vision start, one pad token per merged patch, vision end."""
    tokens = int(np.prod(np.asarray(grid_thw))) // (merge * merge)
    return VISION_START + IMAGE_PAD * tokens + VISION_END


def prompt_text(
    command: str, speed_mps: float, acceleration_mps2: float, history_ego: np.ndarray, grid_thw: np.ndarray, merge: int
) -> str:
    """The prompt: system text, the image placeholders, the command and the ego state written out."""
    images = "".join(image_placeholder(g, merge) for g in np.asarray(grid_thw))
    history = " ".join(f"({x:.1f},{y:.1f})" for x, y, _ in np.asarray(history_ego)[:-1])
    ego = f"speed {speed_mps:.1f} m/s, acceleration {acceleration_mps2:.1f} m/s2, history {history}"
    return f"{SYSTEM_PROMPT} {images} command: {command}. {ego}. "


def rope_positions(
    input_ids: np.ndarray, image_token_id: int, grid_thw: np.ndarray, merge: int
) -> tuple[np.ndarray, int]:
    """Qwen2-VL's 3-axis rope positions ``[3, 1, S]`` for one prompt ``[S]`` and the offset ``delta`` that later
    (text-only) tokens add to their index: text advances all axes together; an image block takes (t, h, w) grid
    positions after the preceding text and the text after it resumes at the block's maximum + 1."""
    ids = np.asarray(input_ids).reshape(-1)
    positions = np.zeros((3, len(ids)), dtype=np.int64)
    next_position, i, image = 0, 0, 0
    while i < len(ids):
        if ids[i] != image_token_id:
            positions[:, i] = next_position
            next_position += 1
            i += 1
            continue
        t, h, w = (int(v) for v in np.asarray(grid_thw)[image])
        h, w = h // merge, w // merge
        count = t * h * w
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
        positions[0, i : i + count] = tt.reshape(-1) + next_position
        positions[1, i : i + count] = hh.reshape(-1) + next_position
        positions[2, i : i + count] = ww.reshape(-1) + next_position
        next_position = int(positions[:, i : i + count].max()) + 1
        i += count
        image += 1
    return positions[:, None, :], int(next_position - len(ids))
