"""PyTorch backend: the SpanVLA model's own steps on its device (CPU or CUDA) in fp32, bf16 or fp16.

The K/V live in a preallocated :class:`~spanvla_ros.model.kv_cache.KVBuffer` written in place; image embeddings,
K/V and logits never leave the device (the host reads one token id per decoded token, and the poses).

On CUDA with ``cuda_graphs`` the decode step and the whole flow are captured as CUDA graphs (static shapes: the decode
step on a working buffer with a device-side write position and mask, the flow on a cache padded to a multiple of
``GRAPH_BUCKET`` positions). A capture that fails falls back to eager execution, and ``graph_status`` says why.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...inputs import VisionGeometry, normalise_patches, patch_normalisation, patch_order
from ...model.kv_cache import KVBuffer
from ...model.spanvla import SpanVLA
from ...model.vlm import pad_vision_mlp
from ..artefact import runtime_meta
from .base import Backend

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Cache lengths are rounded up to a multiple of this for captured graphs (one capture per bucket).
GRAPH_BUCKET = 64


def padded_length(length: int, bucket: int = GRAPH_BUCKET) -> int:
    return -(-length // bucket) * bucket


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        model: SpanVLA,
        device: str = "cpu",
        num_images: int = 2,
        precision: str = "fp32",
        flow_steps: int = 0,
        cuda_graphs: bool | None = None,
        compile_vision: bool | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        # Note: moves (and casts) the model it is given, and on CUDA pads its vision MLPs (not to be saved after).
        self.model = model.eval().to(device=self.device, dtype=PRECISIONS[precision])
        if self.device.type == "cuda":
            pad_vision_mlp(self.model.vlm)  # same outputs, cuBLAS's fast kernels (no gain measured on the CPU)
        self.precision = precision
        self.meta = runtime_meta(model, num_images)
        self.selected = list(self.meta["selected_layers"])
        self.flow_steps = flow_steps or model.config.expert.num_steps
        side = self.meta["image_size"] // self.meta["patch_size"]
        self._grid = torch.tensor([[1, side, side]] * num_images, device=self.device)
        use_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if use_graphs and self.device.type != "cuda":
            raise ValueError("cuda_graphs needs a CUDA device")
        self.graphs = _Graphs(self) if use_graphs else None
        self._patching_key: tuple | None = None  # the camera shape and geometry the device's patch gather is for
        self._patching_value: tuple[torch.Tensor, ...] = ()
        # The vision tower's blocks compiled by inductor (default on CUDA): its eager blocks are launch-bound (1,502
        # kernels for six 448² frames); on an H200 compiled blocks took the 3B tower 39.6 → 23.4 ms.
        self.vision_status = "eager"
        if self.device.type == "cuda" if compile_vision is None else compile_vision:
            for block in self.model.vlm.model.visual.blocks:
                block.compile(dynamic=False)
            self.vision_status = "compiled on first use"

    @classmethod
    def from_artifact(
        cls,
        artifact: Path,
        device: str = "cpu",
        num_images: int = 2,
        flow_steps: int = 0,
        threads: int = 0,
        precision: str = "fp32",
        cuda_graphs: bool | None = None,
        **_: object,
    ) -> TorchBackend:
        if threads:
            torch.set_num_threads(threads)
        model = SpanVLA.load(artifact)
        return cls(model, device, num_images, precision, flow_steps, cuda_graphs)

    @property
    def graph_status(self) -> dict[str, str]:
        """Per step: "captured", "eager" or why a capture failed."""
        return self.graphs.status if self.graphs else {"decode": "eager", "flow": "eager"}

    def _t(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array.to(self.device)
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)

    @torch.no_grad()
    def pixel_values(self, images: np.ndarray, geometry: VisionGeometry) -> torch.Tensor:
        """The frames cross to the device as uint8 (an eighth of the float32 patches' bytes) and are patchified
        there: on an H200 six 448² frames took 37 ms to patchify on the host."""
        order, mean, std = self._patching(tuple(np.shape(images)), geometry)
        frames = self._t(np.asarray(images, np.uint8)).reshape(-1)
        return normalise_patches(frames[order].reshape(-1, mean.shape[0]).float(), mean, std)

    def _patching(self, shape: tuple[int, ...], geometry: VisionGeometry):
        key = (shape, geometry)  # the value is set before its key: a concurrent reader never pairs them wrongly
        if self._patching_key != key:
            mean, std = patch_normalisation(geometry)
            self._patching_value = tuple(self._t(np.array(a)) for a in (patch_order(shape, geometry), mean, std))
            self._patching_key = key
        return self._patching_value

    @torch.no_grad()
    def encode_images(self, pixel_values: np.ndarray | torch.Tensor) -> torch.Tensor:
        pixels = self._t(pixel_values)
        if self.vision_status.startswith("compiled"):
            try:
                embeds = self.model.image_embeddings(pixels, self._grid)
                self.vision_status = "compiled"
                return embeds
            except Exception as exc:  # inductor needs Triton and a C compiler: without them the tower runs eager
                for block in self.model.vlm.model.visual.blocks:
                    block._compiled_call_impl = None
                self.vision_status = f"failed: {type(exc).__name__}: {exc}"
                log.warning("the vision tower runs eager: compiling it failed (%s)", exc)
        return self.model.image_embeddings(pixels, self._grid)

    @torch.no_grad()
    def prefill(self, input_ids, image_embeds, position_ids, max_length):
        working = self.graphs.working_buffer(max_length) if self.graphs is not None else None
        buffer = working or self.model.new_kv_buffer(max_length)
        return self.model.prefill_into(buffer, self._t(input_ids), image_embeds, self._t(position_ids))[0], buffer

    @torch.no_grad()
    def decode(self, token: int, position: int, cache: KVBuffer) -> torch.Tensor:
        if self.graphs is not None and self.graphs.owns(cache):
            return self.graphs.decode(token, position, cache)
        ids = torch.tensor([[token]], device=self.device)
        positions = torch.full((3, 1, 1), position, device=self.device)
        return self.model.decode_into(cache, ids, positions)[0]

    def finish(self, cache: KVBuffer) -> KVBuffer:
        if self.graphs is not None and self.graphs.owns(cache):
            return self.graphs.release(cache)
        return cache

    @torch.no_grad()
    def flow(self, history: np.ndarray, cache: KVBuffer) -> np.ndarray:
        history_t = self._t(np.asarray(history, np.float32)[None])
        poses = self.graphs.flow(history_t, cache) if self.graphs is not None else self.eager_flow(history_t, cache)
        return poses[0].cpu().numpy()

    def eager_flow(self, history: torch.Tensor, cache: KVBuffer) -> torch.Tensor:
        return self.model.flow_sample(cache.layers(), history, num_steps=self.flow_steps, init="history")


class _Graphs:
    """CUDA graphs of the torch backend: the decode step on a reused working buffer per length bucket, and the flow
    per cache-length bucket. Any capture failure leaves that step eager."""

    def __init__(self, backend: TorchBackend) -> None:
        self.backend = backend
        self.model = backend.model
        self.status = {"decode": "not captured yet", "flow": "not captured yet"}
        self._decode: dict[int, dict[str, Any]] = {}
        self._flow: dict[int, dict[str, Any]] = {}
        self._busy = threading.Lock()  # one reasoning pass at a time on the working buffers
        self._flow_lock = threading.Lock()  # plans come from several threads; the flow graph has one set of inputs
        self._leased: KVBuffer | None = None

    # --- decode ------------------------------------------------------------------------------------------------------

    def working_buffer(self, max_length: int) -> KVBuffer | None:
        """The captured decode step's buffer for this length (None: busy, or decode runs eager)."""
        if self.status["decode"].startswith("failed") or not self._busy.acquire(blocking=False):
            return None
        size = padded_length(max_length)
        entry = self._decode.get(size) or self._capture_decode(size)
        if entry is None:
            self._busy.release()
            return None
        entry["buffer"].length = 0
        self._leased = entry["buffer"]
        return entry["buffer"]

    def owns(self, cache: KVBuffer) -> bool:
        return cache is self._leased

    def release(self, cache: KVBuffer) -> KVBuffer:
        """A tight copy of the used part (the working buffer is reused by the next pass)."""
        copy = cache.trimmed()
        self._leased = None
        self._busy.release()
        return copy

    def decode(self, token: int, position: int, cache: KVBuffer) -> torch.Tensor:
        entry = self._decode[cache.max_length]
        cache.reserve(1)
        entry["ids"].fill_(token)
        entry["positions"].fill_(position)
        entry["write"].fill_(cache.length)
        entry["attend"][:, : cache.length + 1] = True  # the prompt, what was decoded, and this token
        entry["attend"][:, cache.length + 1 :] = False
        entry["graph"].replay()
        cache.advance(1)
        return entry["logits"][0]

    def _capture_decode(self, size: int) -> dict[str, Any] | None:
        device = self.backend.device
        buffer = self.model.new_kv_buffer(size)
        entry = {
            "buffer": buffer,
            "ids": torch.zeros(1, 1, dtype=torch.int64, device=device),
            "positions": torch.zeros(3, 1, 1, dtype=torch.int64, device=device),
            "write": torch.zeros(1, dtype=torch.int64, device=device),
            "attend": torch.zeros(1, size, dtype=torch.bool, device=device),
        }

        def step() -> torch.Tensor:
            return self.model.decode_static(buffer, entry["ids"], entry["positions"], entry["write"], entry["attend"])

        return self._capture(self._decode, "decode", size, entry, "logits", step)

    # --- flow --------------------------------------------------------------------------------------------------------

    def flow(self, history: torch.Tensor, cache: KVBuffer) -> torch.Tensor:
        with self._flow_lock:
            return self._flow_locked(history, cache)

    def _flow_locked(self, history: torch.Tensor, cache: KVBuffer) -> torch.Tensor:
        size = padded_length(cache.length)
        entry = self._flow.get(size)
        if entry is None and not self.status["flow"].startswith("failed"):
            entry = self._capture_flow(size, history, cache)
        if entry is None:
            return self.backend.eager_flow(history, cache)
        selected, n = self.backend.selected, cache.length
        entry["history"].copy_(history)
        entry["keys"][:, :, :, :n].copy_(cache.keys[selected, :, :, :n])
        entry["values"][:, :, :, :n].copy_(cache.values[selected, :, :, :n])
        torch.lt(entry["positions"], n, out=entry["mask"][0])
        entry["graph"].replay()
        return entry["poses"].clone()

    def _capture_flow(self, size: int, history: torch.Tensor, cache: KVBuffer) -> dict[str, Any] | None:
        selected = self.backend.selected
        device = self.backend.device
        keys = torch.zeros((len(selected), *cache.keys.shape[1:3], size, cache.keys.shape[4]), dtype=cache.keys.dtype)
        entry = {
            "history": history.clone(),
            "keys": keys.to(device),
            "values": keys.to(device).clone(),
            "mask": torch.zeros(1, size, dtype=torch.bool, device=device),
            "positions": torch.arange(size, device=device),
        }
        entry["mask"][:, 0] = True
        layers = self.model.sparse_kv_layers(list(zip(entry["keys"], entry["values"], strict=True)))
        num_steps = self.backend.flow_steps

        def run() -> torch.Tensor:
            return self.model.flow_sample(layers, entry["history"], entry["mask"], num_steps=num_steps, init="history")

        return self._capture(self._flow, "flow", size, entry, "poses", run)

    def _capture(self, store: dict, step: str, size: int, entry: dict, output: str, function) -> dict | None:
        """Capture ``function`` into ``entry`` (its static output as ``entry[output]``) and keep it for ``size``; a
        failure (not every transformers path captures) leaves ``step`` eager and says why in ``status``."""
        try:
            entry["graph"], entry[output] = _capture(function)
        except Exception as exc:
            self.status[step] = f"failed: {type(exc).__name__}: {exc}"
            log.warning("%s runs eager: CUDA-graph capture failed (%s)", step, exc)
            return None
        self.status[step] = "captured"
        store[size] = entry
        return entry


def _capture(function) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Warm ``function`` up on a side stream (as CUDA-graph capture requires), then capture it; returns the graph and
    its static output."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(2):
            function()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        output = function()
    return graph, output
