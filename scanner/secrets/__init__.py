"""Secret matching: the engine that runs signature rules over bytes, and the
heuristics that tell a real secret from a placeholder or a documented example."""

from scanner.secrets.engine import PluginDetector, RulePlugin, SecretEngine, SecretMatch

__all__ = ["PluginDetector", "RulePlugin", "SecretEngine", "SecretMatch"]
