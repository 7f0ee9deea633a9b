"""Package discovery for setuptools; everything else is in pyproject.toml.

The signature files live in the repository's top-level ``signatures/`` folder (rules are
data, kept apart from code). They ship inside the wheel as the package
``scanner._signatures``, mapped onto that folder here: ``find_packages`` alone cannot
discover a package whose directory is outside ``scanner/``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["scanner", "scanner.*"]), "scanner._signatures"],
    package_dir={"scanner._signatures": "signatures"},
)
