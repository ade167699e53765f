"""Benchmarks that run the product's own ingest and search code."""
