"""The ROS 2 layer: ``planner_node`` and ``sim_node`` (one node per module), message conversions, bag writing and
recording, rosbag replay and the closed-loop demo. Thin wrappers over ``runtime`` (the online planner), ``sim`` and
``eval``. Importing this package imports no rclpy; its modules do."""
