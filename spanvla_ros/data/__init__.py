"""Data: episode generation (positive, negative and recovery samples), reasoning labels, the dataset format and its
PyTorch reader, and adapters from ROS 2 bags and NAVSIM logs."""
