"""Benchmarks: scripts that print measured figures (never timed tests). See the README's make targets."""
