"""Ansätze: Flax modules for wave functions. They know nothing of Hamiltonians; sectors arrive as `Constraint`s."""

from ansatze.autoregressive import AutoregressiveModel
from ansatze.lattice import snake_order
from ansatze.rnn import AR2DRNN, ARRNN
from ansatze.token_sampler import TokenSampler
from ansatze.transformer import ARTransformer

__all__ = ["AR2DRNN", "ARRNN", "ARTransformer", "AutoregressiveModel", "TokenSampler", "snake_order"]
