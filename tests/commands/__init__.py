"""Tests of the CLI layer: shared options, error handling, delivery of outcomes."""
