"""Extraction, owned by ingest: what a message says (facts, entities, relations, categories, dates)
and what to do with each fact against the stored memories (ADD / UPDATE / DELETE / NONE).

- `base`: the `Extractor` interface, `Fact`, `Decision`.
- `local`: the default extractor, rules only (`rules`: relations and the first-person rewrite;
  `categories`); no network.
- `llm`: an OpenAI-compatible model extracts and decides (`prompts/`).
- `evaluation`: scores an extractor on a table of cases (`bench/extraction.py`).
"""

from __future__ import annotations

from openmemory_core.settings import LLMSettings
from openmemory_ingest.extraction.base import Decision, Extractor, Fact
from openmemory_ingest.extraction.local import LocalExtractor

__all__ = ["Decision", "Extractor", "Fact", "LocalExtractor", "build_extractor"]


def build_extractor(settings: LLMSettings) -> Extractor:
    """The extractor the settings ask for: the local rules, or an LLM."""
    if settings.extractor == "llm":
        from openmemory_ingest.extraction.llm import LLMExtractor

        return LLMExtractor(settings)
    return LocalExtractor()
