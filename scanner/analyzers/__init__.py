"""Analyzers: file analyzers (per layer entry) and image analyzers (config and history)."""
