"""PyTorch eager backend: the graph modules run directly on the SpanVLA model (CPU or CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...model.spanvla import SpanVLA
from ..artefact import runtime_meta
from ..graphs import DecodeGraph, FlowGraph, PrefillGraph
from .base import Backend


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: SpanVLA, device: str = "cpu", num_images: int = 2) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.meta = runtime_meta(model, num_images)
        self._prefill = PrefillGraph(self.model)
        self._decode = DecodeGraph(self.model)
        self._flow = FlowGraph(self.model)

    @classmethod
    def from_artifact(
        cls,
        artifact: Path,
        device: str = "cpu",
        num_images: int = 2,
        flow_steps: int = 0,
        threads: int = 0,
        **_: object,
    ) -> TorchBackend:
        if threads:
            torch.set_num_threads(threads)
        backend = cls(SpanVLA.load(artifact), device=device, num_images=num_images)
        if flow_steps:
            backend._flow = FlowGraph(backend.model, num_steps=flow_steps)
        return backend

    def _t(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @torch.no_grad()
    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        count = self.meta["num_images"]
        side = self.meta["image_size"] // self.meta["patch_size"]
        grid = torch.tensor([[1, side, side]] * count, device=self.device)
        out = self.model.vlm.model.visual(self._t(pixel_values), grid_thw=grid)
        return getattr(out, "pooler_output", out).cpu().numpy()

    @torch.no_grad()
    def prefill(self, input_ids, image_embeds, position_ids, attention_mask):
        out = self._prefill(self._t(input_ids), self._t(image_embeds), self._t(position_ids), self._t(attention_mask))
        return tuple(o.cpu().numpy() for o in out)

    @torch.no_grad()
    def decode(self, input_ids, position_ids, attention_mask, past_keys, past_values):
        out = self._decode(
            self._t(input_ids), self._t(position_ids), self._t(attention_mask), self._t(past_keys), self._t(past_values)
        )
        return tuple(o.cpu().numpy() for o in out)

    @torch.no_grad()
    def flow(self, history, keys, values, kv_mask):
        return self._flow(self._t(history), self._t(keys), self._t(values), self._t(kv_mask)).cpu().numpy()
