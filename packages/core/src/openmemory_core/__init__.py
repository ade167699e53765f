"""OpenMemory's shared package: contracts, settings, bus, stores, embeddings, extraction, runtime."""

__version__ = "0.1.0"
