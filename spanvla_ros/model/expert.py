"""The action expert: the bridge from the VLM's sparse KV cache to a trajectory.

A stack of blocks, one per selected VLM layer (every ``layer_interval``-th layer, always including the last). Queries
are the embedded ego history poses followed by the embedded noisy future poses, plus a flow-time embedding; each block
runs self-attention over the queries, then cross-attention whose keys/values are the selected VLM layer's cached K/V
(same KV-head count and head size as the VLM, so the cache is used as is), then an MLP. The VLM never runs again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KVLayer = tuple[torch.Tensor, torch.Tensor]  # keys, values: [B, kv_heads, S, head_dim]


@dataclass(frozen=True)
class ActionExpertConfig:
    """Shape and flow settings of the action expert (trajectory: ``num_poses`` poses every ``dt_s`` seconds)."""

    width: int = 96
    mlp_ratio: int = 4
    self_attention_heads: int = 4
    layer_interval: int = 2
    num_poses: int = 10
    dt_s: float = 0.5
    history_len: int = 4
    history_dt_s: float = 0.5
    num_steps: int = 5
    init: str = "history"
    pose_scale: tuple[float, float, float] = (20.0, 4.0, 0.4)
    #: The flow's units per future pose ``[num_poses][x, y, yaw]`` (None: ``pose_scale`` for every pose; the history
    #: is always in ``pose_scale``). One scale for all poses made a near pose's error as cheap as a far one's, while a
    #: car replanning at 10 Hz follows mostly the first second; stage 2 can set it to the spread of each pose's
    #: departure from the history extrapolation (``sft_bridge.action_scale: residual``).
    action_scale: tuple[tuple[float, float, float], ...] | None = None
    tau_logit_mean: float = 0.0
    tau_logit_std: float = 1.0

    def __post_init__(self) -> None:
        if self.init not in ("history", "noise"):
            raise ValueError(f"init must be 'history' or 'noise', got {self.init!r}")
        if self.layer_interval < 1:
            raise ValueError(f"layer_interval must be >= 1, got {self.layer_interval}")
        if self.action_scale is not None:
            shape = (len(self.action_scale), *{len(row) for row in self.action_scale})
            if shape != (self.num_poses, 3) or min(min(row) for row in self.action_scale) <= 0:
                raise ValueError(f"action_scale must be {self.num_poses} rows of 3 positive numbers")


def selected_layers(num_vlm_layers: int, interval: int) -> list[int]:
    """Every ``interval``-th VLM layer counted back from the last: 1 = all layers, >= num_layers = the last only."""
    return sorted(range(num_vlm_layers - 1, -1, -interval))


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the flow time τ ∈ [0, 1] followed by an MLP."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        frequencies = torch.exp(-math.log(1000.0) * torch.arange(half, device=tau.device, dtype=tau.dtype) / half)
        angles = tau[:, None] * 1000.0 * frequencies[None]
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the query tokens, written with ``scaled_dot_product_attention`` (exports to
    ONNX; ``nn.MultiheadAttention``'s fused inference path does not)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, width))


class ExpertBlock(nn.Module):
    def __init__(self, width: int, heads: int, kv_heads: int, head_dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.kv_heads, self.head_dim = kv_heads, head_dim
        self.norm_self = nn.LayerNorm(width)
        self.self_attention = SelfAttention(width, heads)
        self.norm_cross = nn.LayerNorm(width)
        self.query = nn.Linear(width, kv_heads * head_dim)
        self.out = nn.Linear(kv_heads * head_dim, width)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, kv: KVLayer, kv_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attention(h)
        keys, values = kv
        batch, num_queries, _ = x.shape
        q = self.query(self.norm_cross(x)).view(batch, num_queries, self.kv_heads, self.head_dim).transpose(1, 2)
        mask = None if kv_mask is None else kv_mask[:, None, None, :].to(torch.bool)
        attended = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype), attn_mask=mask)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, num_queries, -1))
        return x + self.mlp(self.norm_mlp(x))


class ActionExpert(nn.Module):
    """Predicts the flow velocity ``[B, N, 3]`` (normalised pose units) from noisy future poses, τ, the ego history
    and the VLM's per-layer KV cache."""

    def __init__(self, config: ActionExpertConfig, num_vlm_layers: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.config = config
        self.layers = selected_layers(num_vlm_layers, config.layer_interval)
        width = config.width
        self.history_embed = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width))
        self.action_embed = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width))
        self.position = nn.Parameter(torch.zeros(config.history_len + config.num_poses, width))
        nn.init.normal_(self.position, std=0.02)
        self.time_embed = TimeEmbedding(width)
        self.blocks = nn.ModuleList(
            ExpertBlock(width, config.self_attention_heads, kv_heads, head_dim, config.mlp_ratio) for _ in self.layers
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)

    def forward(
        self,
        actions: torch.Tensor,
        tau: torch.Tensor,
        history: torch.Tensor,
        kv_layers: Sequence[KVLayer],
        kv_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``actions [B, N, 3]`` and ``history [B, H, 3]`` normalised; ``kv_layers``: every VLM layer's (K, V), of
        which only the selected ones are read; ``kv_mask [B, S]`` True where a cache position is valid."""
        if len(kv_layers) <= self.layers[-1]:
            raise ValueError(f"the expert reads VLM layers {self.layers} but got a cache of {len(kv_layers)} layers")
        tokens = torch.cat([self.history_embed(history), self.action_embed(actions)], dim=1)
        x = tokens + self.position[None, : tokens.shape[1]] + self.time_embed(tau)[:, None, :]
        for block, layer in zip(self.blocks, self.layers, strict=True):
            x = block(x, kv_layers[layer], kv_mask)
        return self.head(self.norm(x[:, history.shape[1] :]))
