"""Packaging for alignkit (settings for tools live in pyproject.toml)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "alignkit" / "_version.py").read_text()
).group(1)

setup(
    name="alignkit",
    version=VERSION,
    description=(
        "Measure and improve how well neural network representations align with "
        "human similarity judgments (odd-one-out, RSA, linear probes)."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # the bundled sample data is a data-only package (no __init__.py)
    packages=find_packages(include=["alignkit", "alignkit.*"]) + ["alignkit.data.sample_data"],
    package_data={"alignkit": ["py.typed"], "alignkit.zoo": ["*.csv"],
                  "alignkit.data.sample_data": ["*", "images/*"]},
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "zarr>=3.0",
        "click>=8.1",
        "tqdm>=4.64",
        "matplotlib>=3.7",
        "torch>=2.1",
        "torchvision>=0.16",
        "pooch>=1.7",
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "dev": [
            "pytest>=7.4",
            "hypothesis>=6.90",
            "ruff>=0.4",
            "scikit-learn>=1.6",
            "dask[distributed]>=2024.1",
            "xarray>=2024.10",
            "timm>=0.9",
            "open_clip_torch>=2.20",
            "transformers>=4.40",
            "rsatoolbox>=0.3",
        ],
        "dask": ["dask[distributed]>=2024.1"],
        "timm": ["timm>=0.9"],
        "open_clip": ["open_clip_torch>=2.20"],
        "hf": ["transformers>=4.40"],
    },
    entry_points={"console_scripts": ["alignkit=alignkit.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
