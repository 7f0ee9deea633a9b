"""layerleak: a forensic scanner for container images."""

__version__ = "0.1.0"
