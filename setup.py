"""Package discovery for the repository's top-level folders (see vla/__init__.py).

`envs/`, `models/` and `agent/` install as `vla.envs`, `vla.models` and `vla.agent`. Metadata lives
in pyproject.toml; this file only maps folders to packages, which pyproject's static tables cannot do
for nested trees, and keeps `colcon build` (ament_python) working from the same source.
"""
from glob import glob

from setuptools import find_packages, setup

TOPS = ("envs", "models", "agent")

packages = ["vla"]
package_dir = {"vla": "vla"}
for top in TOPS:
    packages.append(f"vla.{top}")
    package_dir[f"vla.{top}"] = top
    for sub in find_packages(where=top):
        packages.append(f"vla.{top}.{sub}")
        package_dir[f"vla.{top}.{sub}"] = f"{top}/" + sub.replace(".", "/")

# ament_python: the package marker, package.xml, launch files and ROS 2 parameter files go to share/,
# so `colcon build` gives `ros2 run/launch vla_toolkit ...` (setup.cfg puts the node scripts in lib/vla_toolkit).
ROS_DATA = [
    ("share/ament_index/resource_index/packages", ["resource/vla_toolkit"]),
    ("share/vla_toolkit", ["package.xml"]),
    ("share/vla_toolkit/launch", sorted(glob("launch/*.launch.py"))),
    ("share/vla_toolkit/configs/ros", sorted(glob("configs/ros/*.yaml"))),
]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"vla.models": ["weights/*/*", "weights/*/*/*"]},
    include_package_data=True,
    data_files=ROS_DATA,
)
