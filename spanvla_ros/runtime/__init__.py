"""Runtimes: the SpanVLA pipeline (prompting, decoding, layer selection) over backends (torch, onnxruntime,
tensorrt), ONNX export and the TensorRT engine cache. Importing this package loads neither torch nor TensorRT."""

from .backends import BACKENDS, available_backends, load_backend
from .pipeline import InputError, ReasoningResult, SpanVLARuntime

__all__ = ["BACKENDS", "InputError", "ReasoningResult", "SpanVLARuntime", "available_backends", "load_backend"]
