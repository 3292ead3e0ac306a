"""ONNX export and ONNX Runtime parity with PyTorch, on a tiny SpanVLA."""

import copy
import json

import numpy as np
import pytest
import torch

from spanvla_ros.benchmarks.model import tiny_model
from spanvla_ros.runtime import SpanVLARuntime
from spanvla_ros.runtime.artefact import ArtifactError
from spanvla_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from spanvla_ros.runtime.backends.torch_backend import TorchBackend
from spanvla_ros.runtime.export import GRAPH_FILES, export_onnx

TOLERANCE = 1e-4  # stated parity tolerance, float32 on the CPU


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    out = tmp_path_factory.mktemp("onnx")
    document = export_onnx(model, out, num_images=2)
    return model, out, document


def observation(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    history = np.array([[-15.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    return images, "straight", 10.0, 0.0, history


def test_export_writes_checked_graphs_and_metadata(exported):
    model, out, document = exported
    for name in GRAPH_FILES:
        assert (out / name).is_file()
    assert document["opset"] == 18
    assert max(document["parity_max_abs"].values()) < TOLERANCE
    assert document["meta"]["selected_layers"] == model.expert.layers
    assert json.loads((out / "export.json").read_text())["files"].keys() >= set(GRAPH_FILES)


def test_ort_matches_torch_for_prefill_decode_and_plan(exported):
    model, out, _ = exported
    torch_rt = SpanVLARuntime(TorchBackend(model), out / "tokenizer.json")
    ort_rt = SpanVLARuntime(OnnxRuntimeBackend(out), out / "tokenizer.json")
    a = torch_rt.reason(*observation(), max_new_tokens=32)
    b = ort_rt.reason(*observation(), max_new_tokens=32)
    np.testing.assert_allclose(b.cache.host()[0], a.cache.host()[0], atol=TOLERANCE)
    assert b.token_ids == a.token_ids and b.text == a.text  # greedy text identical over 32 tokens
    assert len(a.token_ids) == 32 or a.token_ids[-1] in (model.action_marker_id, model.tokenizer.eos_token_id)
    plan_a, plan_b = torch_rt.plan(a, observation()[4]), ort_rt.plan(b, observation()[4])
    assert plan_a.shape == (10, 3)
    np.testing.assert_allclose(plan_b, plan_a, atol=TOLERANCE)


def test_runtime_pipeline_matches_the_model_itself(exported):
    """The pipeline's tokenisation, rope positions and decode loop reproduce SpanVLA.reason/plan."""
    model, out, _ = exported
    from spanvla_ros.model.spanvla import Observation

    images, command, speed, accel, history = observation(3)
    runtime = SpanVLARuntime(TorchBackend(model), out / "tokenizer.json")
    result = runtime.reason(images, command, speed, accel, history, max_new_tokens=12)
    reference = model.reason(Observation(images, command, speed, accel, history), max_new_tokens=12)
    assert result.token_ids == reference.token_ids
    np.testing.assert_allclose(runtime.plan(result, history), model.plan(reference, history), atol=1e-4)


def test_batch_dimension_stays_dynamic(exported):
    model, out, _ = exported
    backend = OnnxRuntimeBackend(out)
    runtime = SpanVLARuntime(backend, out / "tokenizer.json")
    result = runtime.reason(*observation(), max_new_tokens=2)
    keys, values = (np.repeat(kv, 3, axis=1) for kv in result.cache.host())
    history = np.repeat(observation()[4][None].astype(np.float32), 3, 0)
    feeds = {"history": history, "keys": keys, "values": values, "kv_mask": np.ones((3, keys.shape[3]), bool)}
    poses = backend.to_host(backend.run_graph("flow", feeds)[0])
    assert poses.shape == (3, 10, 3)
    np.testing.assert_allclose(poses[0], poses[2], atol=1e-5)


def test_truncated_or_tampered_exports_are_refused(exported, tmp_path):
    model, out, _ = exported
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in out.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    data = (broken / "decode.onnx").read_bytes()
    (broken / "decode.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="decode.onnx: sha256 does not match"):
        OnnxRuntimeBackend(broken)
    (broken / "export.json").unlink()
    with pytest.raises(ArtifactError, match="no export.json"):
        OnnxRuntimeBackend(broken)


def test_bad_inputs_are_clear_errors(exported):
    from spanvla_ros.runtime import InputError

    model, out, _ = exported
    runtime = SpanVLARuntime(OnnxRuntimeBackend(out), out / "tokenizer.json")
    images, command, speed, accel, history = observation()
    with pytest.raises(InputError, match="images must be uint8"):
        runtime.reason(images[:1], command, speed, accel, history)
    with pytest.raises(InputError, match="finite"):
        runtime.reason(images, command, float("nan"), accel, history)
    torch.manual_seed(0)


def test_an_export_from_another_architecture_is_refused(exported, tmp_path):
    import dataclasses

    from spanvla_ros.model import SpanVLA
    from spanvla_ros.runtime.artefact import ArtifactError
    from spanvla_ros.runtime.export import verify_export

    model, out, _ = exported
    model.save(tmp_path / "same")
    verify_export(out, tmp_path / "same")  # the checkpoint it came from passes
    config = dataclasses.replace(model.config, expert=dataclasses.replace(model.config.expert, layer_interval=1))
    other = SpanVLA(config, model.tokenizer, model.codebook)
    other.save(tmp_path / "other")
    with pytest.raises(ArtifactError, match="selected_layers: export has"):
        verify_export(out, tmp_path / "other")


def test_the_cache_stays_on_the_backend_from_prefill_to_the_flow(exported):
    """ONNX Runtime keeps the K/V as OrtValues between graphs (I/O binding); torch writes them into one preallocated
    buffer sized for the prompt and the token budget; both give the model's own result."""
    import onnxruntime as ort

    from spanvla_ros.model.kv_cache import KVBuffer

    model, out, _ = exported
    bound = SpanVLARuntime(OnnxRuntimeBackend(out, io_binding=True), out / "tokenizer.json")
    ort_result = bound.reason(*observation(), 6)
    assert isinstance(ort_result.cache.keys, ort.OrtValue)  # never converted to numpy between graphs
    plain = SpanVLARuntime(OnnxRuntimeBackend(out), out / "tokenizer.json")
    np.testing.assert_allclose(
        bound.plan(ort_result, observation()[4]),
        plain.plan(plain.reason(*observation(), 6), observation()[4]),
        atol=1e-5,
    )
    torch_rt = SpanVLARuntime(TorchBackend(model), out / "tokenizer.json")
    result = torch_rt.reason(*observation(), 6)
    cache = result.cache
    assert isinstance(cache, KVBuffer) and cache.max_length >= cache.length
    prompt_length = cache.length - len(result.token_ids)
    assert cache.max_length == prompt_length + 6 + 1  # preallocated once: prompt + budget + marker
    assert ort_result.cache.length == cache.length
    np.testing.assert_allclose(ort_result.cache.host()[1], cache.host()[1], atol=TOLERANCE)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_torch_backend_precisions_run_the_whole_pipeline(exported, precision):
    model, out, _ = exported
    backend = TorchBackend(copy.deepcopy(model), precision=precision)
    assert backend.model.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    runtime = SpanVLARuntime(backend, out / "tokenizer.json")
    result = runtime.reason(*observation(), 4)
    assert result.cache.keys.dtype == backend.model.dtype
    plan = runtime.plan(result, observation()[4])
    reference = SpanVLARuntime(TorchBackend(model), out / "tokenizer.json")
    expected = reference.plan(reference.reason(*observation(), 4), observation()[4])
    assert plan.shape == (10, 3) and np.isfinite(plan).all()
    assert np.abs(plan[:, :2] - expected[:, :2]).max() < 2.0  # same plan within half-precision rounding
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchBackend(model, precision="int4")
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        TorchBackend(model, cuda_graphs=True)
