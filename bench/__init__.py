"""Benchmarks (make bench): not tests; figures go to the README's performance section."""
