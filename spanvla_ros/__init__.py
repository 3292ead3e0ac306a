"""spanvla_ros: the SpanVLA vision-language-action planner for ROS 2.

Folders, each a concern with a small public surface (dependencies point one way):
``scene`` (typed scene data) ← ``planning`` (planner interface, reference planners) ← ``eval`` (tracker, PDM scorer,
closed-loop metrics, reports).
"""

__version__ = "0.1.0"
