"""ament_python package setup: installs the Python package, the ament index marker, package.xml, launch/ and config/.

`colcon build` in a ROS 2 workspace and `pip install .` into a virtual environment both put the share files under
`<prefix>/share/spanvla_ros`, where `ament_index_python.get_package_share_directory` finds them.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "spanvla_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        # The shipped default checkpoint (model:default): weights, config, tokenizer, codebook, manifest, records.
        (f"share/{PACKAGE}/models/default", [f for f in glob("models/default/*") if Path(f).is_file()]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="spanvla_ros maintainers",
    maintainer_email="maintainers@spanvla-ros.dev",
    description="SpanVLA vision-language-action planning for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.11",
    entry_points={
        "console_scripts": [
            "spanvla = spanvla_ros.cli:main",
            "planner_node = spanvla_ros.ros.planner_node:main",
            "sim_node = spanvla_ros.ros.sim_node:main",
        ],
    },
)
