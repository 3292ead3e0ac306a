"""Declaring a node's parameters from one table: name, default, description and range, with ROS descriptors, so
``ros2 param describe`` shows them and a bad value is refused when it is set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = True


def declare(node, table: list[Param]) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; return their values (after overrides from YAML/CLI).
    Raises ValueError naming the parameter when a value is out of its range or choices."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    values = {}
    for param in table:
        descriptor = ParameterDescriptor(description=param.description, read_only=param.read_only)
        if param.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(param.choices)
        if param.low is not None and isinstance(param.default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=param.low, to_value=param.high)]
        elif param.low is not None and isinstance(param.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=1)]
        value = node.declare_parameter(param.name, param.default, descriptor).value
        check(param, value)
        values[param.name] = value
    return values


def check(param: Param, value: Any) -> None:
    if param.choices and value not in param.choices:
        raise ValueError(f"parameter '{param.name}' = {value!r}: choose one of {', '.join(param.choices)}")
    if param.low is not None and not (param.low <= value <= param.high):
        raise ValueError(f"parameter '{param.name}' = {value!r} is outside [{param.low}, {param.high}]")
