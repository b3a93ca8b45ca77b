"""Ansätze: Flax modules for wave functions. They know nothing of Hamiltonians; sectors arrive as `Constraint`s."""

from ansatze.transformer import ARTransformer

__all__ = ["ARTransformer"]
