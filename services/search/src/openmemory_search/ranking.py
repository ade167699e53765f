"""Fusing ranked lists from several signals into one ranking (reciprocal-rank fusion)."""

from __future__ import annotations

from dataclasses import dataclass, field

from openmemory_core.contracts import Memory

RRF_K = 60


@dataclass
class Fused:
    memory: Memory
    score: float = 0.0
    signals: list[str] = field(default_factory=list)


class HybridRanker:
    """Reciprocal-rank fusion: each signal adds weight / (k + rank) for every memory it ranks."""

    def __init__(self, weights: dict[str, float] | None = None, k: int = RRF_K) -> None:
        self.weights = weights or {}
        self.k = k

    def fuse(self, ranked: dict[str, list[Memory]], limit: int) -> list[Fused]:
        fused: dict[str, Fused] = {}
        for signal, memories in ranked.items():
            weight = self.weights.get(signal, 1.0)
            for rank, memory in enumerate(memories):
                entry = fused.setdefault(memory.id, Fused(memory))
                entry.score += weight / (self.k + rank + 1)
                entry.signals.append(signal)
        ordered = sorted(fused.values(), key=lambda f: (-f.score, -f.memory.created_at.timestamp()))
        return ordered[:limit]
