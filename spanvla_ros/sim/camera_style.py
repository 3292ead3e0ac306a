"""Camera domain randomisation: per-episode looks of the front camera, so plans hold on cameras that do not look like
the renderer's defaults.

A :class:`CameraStyle` is one look: the scene's palette and a small mounting-pose jitter (applied through
:class:`~spanvla_ros.sim.camera.CameraConfig`), and photometric changes applied to each rendered frame (brightness,
contrast, gamma, a colour cast, blur, sensor noise). :func:`random_style` draws the training styles;
:data:`HELD_OUT_STYLES` are looks outside those ranges (dusk, overcast, a washed-out camera) that training never sees,
for evaluation on camera styles not seen in training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from .camera import ASPHALT, GRASS, MARKING, SKY, CameraConfig


@dataclass(frozen=True)
class CameraStyle:
    """One camera look. Palette colours are RGB; ``gain`` scales each channel; ``noise_std`` is in 8-bit units."""

    name: str = "default"
    sky: tuple[int, int, int] = SKY
    grass: tuple[int, int, int] = GRASS
    asphalt: tuple[int, int, int] = ASPHALT
    marking: tuple[int, int, int] = MARKING
    pitch_offset_deg: float = 0.0
    height_offset_m: float = 0.0
    mount_x_offset_m: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur_sigma_px: float = 0.0
    noise_std: float = 0.0

    def camera_config(self, base: CameraConfig) -> CameraConfig:
        """``base`` with this style's palette and mounting jitter."""
        return dataclasses.replace(
            base,
            sky=self.sky,
            grass=self.grass,
            asphalt=self.asphalt,
            marking=self.marking,
            pitch_deg=base.pitch_deg + self.pitch_offset_deg,
            mount_height_m=base.mount_height_m + self.height_offset_m,
            mount_x_m=base.mount_x_m + self.mount_x_offset_m,
        )

    def apply(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The photometric part on one ``[H, W, 3]`` uint8 frame (noise drawn from ``rng``; none without one)."""
        out = image.astype(np.float32) / 255.0
        if self.blur_sigma_px > 0:
            out = cv2.GaussianBlur(out, (0, 0), self.blur_sigma_px)
        out = out * np.asarray(self.gain, np.float32)
        out = (out - 0.5) * self.contrast + 0.5 + self.brightness
        out = np.clip(out, 0.0, 1.0) ** self.gamma
        out = out * 255.0
        if self.noise_std > 0 and rng is not None:
            out = out + rng.normal(0.0, self.noise_std, out.shape).astype(np.float32)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


DEFAULT_STYLE = CameraStyle()


def _jitter_colour(rng: np.random.Generator, colour: tuple[int, int, int], spread: float) -> tuple[int, int, int]:
    shade = rng.uniform(1.0 - spread, 1.0 + spread)  # one brightness for the colour, a smaller shift per channel
    values = np.asarray(colour, np.float64) * shade + rng.uniform(-spread, spread, 3) * 60.0
    return tuple(int(v) for v in np.clip(values, 0, 255))


def random_style(rng: np.random.Generator, strength: float = 1.0) -> CameraStyle:
    """A training look drawn around the defaults; ``strength`` 0 gives the default look, 1 the full ranges."""
    s = float(strength)
    return CameraStyle(
        name="random",
        sky=_jitter_colour(rng, SKY, 0.25 * s),
        grass=_jitter_colour(rng, GRASS, 0.3 * s),
        asphalt=_jitter_colour(rng, ASPHALT, 0.3 * s),
        marking=_jitter_colour(rng, MARKING, 0.15 * s),
        pitch_offset_deg=float(rng.uniform(-1.0, 1.0) * s),
        height_offset_m=float(rng.uniform(-0.15, 0.15) * s),
        mount_x_offset_m=float(rng.uniform(-0.3, 0.3) * s),
        brightness=float(rng.uniform(-0.12, 0.12) * s),
        contrast=float(1.0 + rng.uniform(-0.25, 0.2) * s),
        gamma=float(np.exp(rng.uniform(-0.25, 0.25) * s)),
        gain=tuple(float(g) for g in 1.0 + rng.uniform(-0.12, 0.12, 3) * s),
        blur_sigma_px=float(rng.choice([0.0, rng.uniform(0.3, 1.0)]) * s),
        noise_std=float(rng.uniform(0.0, 6.0) * s),
    )


#: Looks outside the training ranges (darker, greyer, tinted, softer, noisier, mounted differently).
HELD_OUT_STYLES: dict[str, CameraStyle] = {
    "dusk": CameraStyle(
        name="dusk", sky=(70, 60, 110), grass=(30, 55, 40), asphalt=(50, 50, 60), marking=(190, 180, 150),
        brightness=-0.15, contrast=0.8, gamma=1.35, gain=(1.1, 0.9, 1.15), noise_std=8.0, pitch_offset_deg=1.5,
    ),
    "overcast": CameraStyle(
        name="overcast", sky=(200, 200, 205), grass=(95, 110, 85), asphalt=(120, 120, 122), marking=(215, 215, 210),
        contrast=0.65, blur_sigma_px=1.4, height_offset_m=0.3, mount_x_offset_m=0.6,
    ),
    "washed_out": CameraStyle(
        name="washed_out", sky=(230, 230, 250), grass=(140, 160, 90), asphalt=(150, 145, 140),
        marking=(255, 255, 255), brightness=0.15, contrast=0.7, gamma=0.75, gain=(1.0, 1.05, 0.85), noise_std=10.0,
        pitch_offset_deg=-1.5,
    ),
}  # fmt: skip


def camera_style(name: str, rng: np.random.Generator, strength: float = 1.0) -> CameraStyle:
    """A look by name: ``random`` (drawn from ``rng``), ``default``, or a held-out one."""
    if name == "random":
        return random_style(rng, strength)
    if name == "default":
        return DEFAULT_STYLE
    if name in HELD_OUT_STYLES:
        return HELD_OUT_STYLES[name]
    raise ValueError(f"unknown camera style {name!r}: random, default or one of {', '.join(HELD_OUT_STYLES)}")


def episode_style(name: str, seed: int, strength: float = 1.0) -> tuple[CameraStyle, np.random.Generator]:
    """The look of episode ``seed`` and the random stream of its frames' noise. The stream is the seed's own, apart
    from the drive's, so a seed drives the same whatever its look, and data generation and closed-loop evaluation
    give a seed the same look."""
    rng = np.random.default_rng([seed, 1])
    return camera_style(name, rng, strength), rng
