"""Backend selection, availability and the TensorRT engine cache rules (no TensorRT needed)."""

import importlib.util
import json

import pytest

from spanvla_ros.runtime import available_backends, load_backend
from spanvla_ros.runtime.backends import BackendUnavailableError
from spanvla_ros.runtime.backends.tensorrt_backend import TRT_TO_NUMPY, profile_shapes
from spanvla_ros.runtime.engine_cache import EngineCache, EngineCacheError, EngineKey

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def key(**changes):
    fields = dict(
        onnx_sha256="a" * 64,
        tensorrt_version="10.13.0",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        precision="fp16",
    )
    fields.update(changes)
    return EngineKey(**fields)


def test_engine_cache_round_trip_and_refusals(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    path = cache.store("flow", key(), b"serialized-engine-bytes")
    assert cache.lookup("flow", key()) == path
    with pytest.raises(EngineCacheError, match="tensorrt_version is '10.13.0', need '10.14.0'"):
        cache.lookup("flow", key(tensorrt_version="10.14.0"))
    with pytest.raises(EngineCacheError, match="precision"):
        cache.lookup("flow", key(precision="fp32"))
    path.write_bytes(b"serialized-engine-bytez")
    with pytest.raises(EngineCacheError, match="corrupt"):
        cache.lookup("flow", key())
    with pytest.raises(ValueError, match="precision must be"):
        key(precision="int4")


def test_an_edited_manifest_key_is_caught(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store("decode", key(), b"x")
    _, manifest = cache.paths("decode", key())
    record = json.loads(manifest.read_text())
    record["key"]["gpu_name"] = "other GPU"
    manifest.write_text(json.dumps(record))
    with pytest.raises(EngineCacheError, match="gpu_name is 'other GPU'"):
        cache.lookup("decode", key())


def test_profiles_cover_the_export_shapes():
    meta = {
        "num_layers": 4,
        "kv_heads": 2,
        "head_dim": 64,
        "hidden_size": 256,
        "selected_layers": [1, 3],
        "num_images": 2,
        "tokens_per_image": 16,
        "image_size": 112,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "history_len": 4,
        "num_poses": 10,
    }
    profiles = profile_shapes(meta)
    low, opt, high = profiles["decode"]["past_keys"]
    assert low[0] == opt[0] == high[0] == 4 and low[3] <= opt[3] <= high[3]
    assert profiles["vision"]["pixel_values"][0] == (128, 1176)
    assert profiles["flow"]["keys"][1][0] == 4  # every layer: the flow graph selects inside
    assert TRT_TO_NUMPY["HALF"].__name__ == "float16"


def test_availability_names_the_reason_and_the_alternatives(tmp_path):
    status = available_backends()
    assert status["torch"] == "available" and status["onnxruntime"] == "available"
    if not HAS_TENSORRT:
        assert "TensorRT is not installed" in status["tensorrt"]
        with pytest.raises(BackendUnavailableError, match="tensorrt.*unavailable.*onnxruntime"):
            load_backend("tensorrt", tmp_path)
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        load_backend("jax", tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT (builder) is not installable here; see README 'TensorRT'")
def test_tensorrt_engines_match_onnxruntime(tmp_path):
    from spanvla_ros.benchmarks.model import tiny_model
    from spanvla_ros.runtime.backends.tensorrt_backend import TensorRTBackend
    from spanvla_ros.runtime.export import export_onnx

    export_onnx(tiny_model(), tmp_path, num_images=2)
    backend = TensorRTBackend(tmp_path, tmp_path / "engines", precision="fp32", allow_build=True)
    assert backend.meta["num_layers"] > 0


def test_the_torch_backend_patchifies_on_its_device_exactly_as_the_host_does():
    """The frames cross as uint8 and the patch gather and normalisation run on the backend's device: the same
    float32 pixels, bit for bit, as the host's patchify (the ONNX/TensorRT path), for more than one camera shape."""
    import numpy as np
    import torch

    from spanvla_ros.benchmarks.model import tiny_model
    from spanvla_ros.inputs import VisionGeometry, patchify
    from spanvla_ros.runtime.backends.torch_backend import TorchBackend

    backend = TorchBackend(tiny_model(), num_images=2)
    rng = np.random.default_rng(3)
    for shape in [(2, 112, 112, 3), (1, 56, 112, 3), (2, 112, 112, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        on_device = backend.pixel_values(frames, VisionGeometry())
        assert on_device.dtype == torch.float32
        assert torch.equal(on_device, torch.from_numpy(patchify(frames, VisionGeometry())[0]))
    with pytest.raises(ValueError, match="uint8"):
        patchify(np.zeros((2, 112, 112, 3), np.float32), VisionGeometry())
