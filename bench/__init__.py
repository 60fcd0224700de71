"""Benchmarks beside their baselines: ``python -m bench [--quick]`` from the repo root.

Every figure is printed next to a baseline measured in the same run (machines here are
shared and drift by 10–30%), so the ratio is the number to compare across runs.
"""
