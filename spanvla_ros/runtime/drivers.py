"""Drivers of the planning core (:class:`~spanvla_ros.runtime.online.OnlinePlanner`): who runs reasoning and when.

``ThreadedDriver`` is the car's: a reasoning worker thread at the reasoning rate, a watchdog that replaces a hung
worker, planning cycles planned as soon as their inputs are in (from the caller's threads or the worker's), and
callbacks for what to publish. ``SyncDriver`` is the replay's, the closed-loop evaluation's and the tests': one
thread and the caller's clock; a reasoning pass that is due runs to completion before the cycle plans, so two runs on
the same inputs give the same plans. Neither knows about ROS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .online import OnlinePlanner, PlanOutput
from .pipeline import ReasoningResult

#: Testing only: "reasoning_raise" makes passes 2-4 raise, "reasoning_hang" makes pass 2 hang (the watchdog's case).
FAULTS = ("", "reasoning_raise", "reasoning_hang")


@dataclass(frozen=True)
class Cycle:
    """What one synchronous step produced: a new reasoning (None when none was due) and a plan (None: no cycle was
    open, or it still waits for inputs)."""

    reasoning: ReasoningResult | None
    plan: PlanOutput | None


class SyncDriver:
    """The core on the caller's thread and clock. Feed inputs to ``core``; call ``cycle(now_s)`` when a cycle may
    open (on odometry, as the node does): a due reasoning pass runs inline, then the open cycle plans."""

    def __init__(self, core: OnlinePlanner) -> None:
        self.core = core

    def cycle(self, now_s: float, gap_periods: float = 1.0) -> Cycle:
        core = self.core
        core.open_cycle(now_s, gap_periods)
        if not core.cycle_open:
            return Cycle(None, None)
        reasoning = None
        inputs = core.reasoning_inputs(now_s)
        if inputs is not None:
            result = core.run_reasoning(inputs)
            if core.set_reasoning(inputs, result):
                reasoning = result
        return Cycle(reasoning, core.plan_due(now_s))


class ThreadedDriver:
    """The core on a vehicle: ``start()`` runs the reasoning worker; ``open_cycle`` (on odometry, and from a timer
    with ``gap_periods`` 1.5) and ``wake`` (on frames) come from the caller's threads; ``check_worker`` from a
    housekeeping timer. ``on_plan(plan)`` and ``on_reasoning(result, elapsed_ms)`` are called on whichever thread
    finished the work; ``on_failure(message)`` when a reasoning pass raised or hung."""

    def __init__(
        self,
        core: OnlinePlanner,
        clock: Callable[[], float],
        on_plan: Callable[[PlanOutput], None],
        on_reasoning: Callable[[ReasoningResult, float], None],
        on_failure: Callable[[str], None],
        hang_s: float = 10.0,
        fault: str = "",
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        self.core = core
        self.clock = clock
        self.on_plan, self.on_reasoning, self.on_failure = on_plan, on_reasoning, on_failure
        self.hang_s = hang_s
        self.fault = fault
        self.running = False
        self.worker_restarts = 0
        self.reasoning_passes = 0  # counted across worker restarts, so an injected hang happens once
        self._wake = threading.Event()
        self._generation = 0
        self._pass_started_wall: float | None = None

    def start(self) -> None:
        self.running = True
        self._start_worker()

    def stop(self) -> None:
        """Stop planning; the running worker ends after its pass and its result is dropped."""
        self.running = False
        self._generation += 1
        self._wake.set()

    def wake(self) -> None:
        """New frames arrived: a reasoning pass may be due."""
        self._wake.set()

    def open_cycle(self, cycle_s: float, gap_periods: float = 1.0) -> None:
        if not self.running:
            return
        self.core.open_cycle(cycle_s, gap_periods)
        self._try_plan()

    def _try_plan(self) -> None:
        if not self.running:
            return
        plan = self.core.plan_due(self.clock())
        if plan is not None:
            self.on_plan(plan)

    # --- the reasoning worker and its watchdog -------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._generation += 1
        threading.Thread(
            target=self._reasoning_loop, args=(self._generation,), name="spanvla-reasoning", daemon=True
        ).start()

    def _reasoning_loop(self, generation: int) -> None:
        core = self.core
        while self.running and generation == self._generation:
            self._wake.wait(timeout=0.05)
            self._wake.clear()
            inputs = core.reasoning_inputs(self.clock())
            if inputs is None:
                continue
            self._pass_started_wall = time.monotonic()
            start = time.perf_counter()
            self.reasoning_passes += 1
            try:
                self._inject_fault(self.reasoning_passes)
                result = core.run_reasoning(inputs)
            except Exception as exc:  # a failed pass: plans continue on the last good cache
                message = f"{type(exc).__name__}: {exc}"
                core.reasoning_failed(self.clock(), message)
                self.on_failure(f"reasoning pass failed: {message}")
                continue
            finally:
                if generation == self._generation:
                    self._pass_started_wall = None
            if generation != self._generation:
                return  # the watchdog replaced this worker (or planning stopped); its late result is dropped
            if core.set_reasoning(inputs, result):
                self.on_reasoning(result, 1e3 * (time.perf_counter() - start))
                self._try_plan()

    def _inject_fault(self, pass_number: int) -> None:
        if self.fault == "reasoning_raise" and 2 <= pass_number <= 4:
            raise RuntimeError("injected fault (inject_fault: reasoning_raise)")
        if self.fault == "reasoning_hang" and pass_number == 2:
            time.sleep(3600.0)

    def check_worker(self) -> None:
        """Replace a worker whose pass has run longer than ``hang_s`` wall seconds."""
        started = self._pass_started_wall
        if not self.running or started is None or time.monotonic() - started <= self.hang_s:
            return
        self.worker_restarts += 1
        self._pass_started_wall = None
        message = (
            f"a reasoning pass hung for more than {self.hang_s} s: worker restarted ({self.worker_restarts} restart(s))"
        )
        self.core.reasoning_failed(self.clock(), message)
        self.on_failure(message)
        self._start_worker()
