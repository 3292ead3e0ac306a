"""History-initialised flow matching (SpanVLA): the flow runs from the ego's extrapolated history to the future.

``a_τ = τ·a + (1 − τ)·a_his``, target velocity ``v = a − a_his``, loss ``‖f(a_τ, τ, c) − v‖²``; τ is drawn from a
logit-normal ("shifted normal") distribution; inference integrates ``num_steps`` Euler steps from τ = 0.

``a_his`` is the constant-velocity / constant-yaw-rate extrapolation of the ego history to the horizon: it is already
a plausible plan (so few steps suffice, as the paper's ablation shows), costs nothing to compute on the car, and
needs no learned parameters; the history itself also enters the expert as embedded query tokens.
``init="noise"`` starts from Gaussian noise instead (the paper's no-history ablation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def history_initialisation(history_ego: torch.Tensor, history_dt_s: float, num_poses: int, dt_s: float) -> torch.Tensor:
    """Extrapolate ``history_ego [B, H, 3]`` (ego frame, oldest first, the last pose = now = origin) at constant speed
    and yaw rate to future poses ``[B, num_poses, 3]`` at ``t = dt_s, 2·dt_s, …``.

    With a single history pose the extrapolation stands still.
    """
    batch = history_ego.shape[0]
    device, dtype = history_ego.device, history_ego.dtype
    if history_ego.shape[1] < 2:
        return torch.zeros(batch, num_poses, 3, device=device, dtype=dtype)
    last, previous = history_ego[:, -1], history_ego[:, -2]
    step = last[:, :2] - previous[:, :2]
    speed = torch.linalg.norm(step, dim=-1) / history_dt_s
    # Moving backwards in the ego frame means reversing; the planner extrapolates forward motion only.
    speed = torch.where(step[:, 0] < 0, torch.zeros_like(speed), speed)
    yaw_rate = (
        torch.atan2(torch.sin(last[:, 2] - previous[:, 2]), torch.cos(last[:, 2] - previous[:, 2])) / history_dt_s
    )
    t = torch.arange(1, num_poses + 1, device=device, dtype=dtype) * dt_s  # [N]
    heading = yaw_rate[:, None] * t[None]  # [B, N]
    # Exact arc integration; the straight-line limit for a tiny yaw rate.
    small = yaw_rate.abs() < 1e-4
    safe_rate = torch.where(small, torch.ones_like(yaw_rate), yaw_rate)[:, None]
    x_arc = speed[:, None] * torch.sin(heading) / safe_rate
    y_arc = speed[:, None] * (1 - torch.cos(heading)) / safe_rate
    x_line = speed[:, None] * t[None]
    x = torch.where(small[:, None], x_line, x_arc)
    y = torch.where(small[:, None], torch.zeros_like(y_arc), y_arc)
    return torch.stack([x, y, heading], dim=-1)


def gaussian(
    shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Standard normal float32 noise on ``device``, drawn from ``generator`` on the generator's own device (a CPU
    generator keeps a run reproducible whichever device the model is on)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source).to(device)


def sample_flow_time(
    batch: int,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """τ ``[B]`` in (0, 1) from a logit-normal distribution (a normal shifted by ``logit_mean``, squashed)."""
    normal = gaussian((batch,), generator, device)
    return torch.sigmoid(logit_mean + logit_std * normal)


def flow_matching_loss(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    start: torch.Tensor,
    tau: torch.Tensor,
) -> torch.Tensor:
    """Mean squared error between ``velocity_fn(a_τ, τ)`` and ``target − start`` (all ``[B, N, D]``, τ ``[B]``)."""
    tau_b = tau[:, None, None]
    interpolated = tau_b * target + (1.0 - tau_b) * start
    predicted = velocity_fn(interpolated, tau)
    return torch.mean((predicted - (target - start)) ** 2)


def euler_integrate(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], start: torch.Tensor, num_steps: int
) -> torch.Tensor:
    """Integrate the flow from τ = 0 to 1 in ``num_steps`` Euler steps, from ``start [B, N, D]``."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    action = start
    dt = 1.0 / num_steps
    for step in range(num_steps):
        tau = torch.full((start.shape[0],), step * dt, device=start.device, dtype=start.dtype)
        action = action + dt * velocity_fn(action, tau)
    return action


def sde_integrate(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    num_steps: int,
    noise_std: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The stochastic counterpart of :func:`euler_integrate` (Flow-GRPO style): each Euler step adds Gaussian noise
    of std ``noise_std·√dt``, so a group of samples on one cache differs and every step has a log-probability.
    Returns the path ``[B, num_steps + 1, N, D]`` (the start, then after each step); its last entry is the plan."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = 1.0 / num_steps
    path = [start]
    action = start
    for step in range(num_steps):
        tau = torch.full((start.shape[0],), step * dt, device=start.device, dtype=start.dtype)
        mean = action + dt * velocity_fn(action, tau)
        noise = gaussian(mean.shape, generator, mean.device).to(mean.dtype)
        action = mean + noise_std * dt**0.5 * noise
        path.append(action)
    return torch.stack(path, dim=1)


def sde_log_prob(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], path: torch.Tensor, noise_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability ``[B]`` of a path from :func:`sde_integrate` under ``velocity_fn`` (summed over steps and
    coordinates, constants dropped), and the step means ``[B, K, N, D]`` (for a KL between two velocity fields)."""
    num_steps = path.shape[1] - 1
    dt = 1.0 / num_steps
    variance = noise_std**2 * dt
    means = []
    for step in range(num_steps):
        before = path[:, step]
        tau = torch.full((path.shape[0],), step * dt, device=path.device, dtype=path.dtype)
        means.append(before + dt * velocity_fn(before, tau))
    means = torch.stack(means, dim=1)
    log_prob = -((path[:, 1:] - means) ** 2).sum(dim=(1, 2, 3)) / (2.0 * variance)
    return log_prob, means
