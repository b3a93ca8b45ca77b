"""Ansätze: Flax modules for wave functions. They know nothing of Hamiltonians; sectors arrive as `Constraint`s."""

from ansatze.rnn import AR2DRNN, ARRNN, snake_order
from ansatze.transformer import ARTransformer

__all__ = ["AR2DRNN", "ARRNN", "ARTransformer", "snake_order"]
