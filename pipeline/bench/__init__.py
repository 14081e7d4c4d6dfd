"""Benchmarks that print JSON and compare against a baseline measured in the same run."""
