"""Orbit decomposition of a sector under a symmetry group (`nqs.symmetry`), checked against the brute-force
projection ψ_G(x) = Σ_g χ_g ψ(g x)."""

from __future__ import annotations

import numpy as np
import pytest

import nqs  # noqa: F401
from hamiltonians import heisenberg
from nqs.symmetry import SymmetrySector, group_elements, symmetry_group

L = 6
CHAIN = heisenberg(L, J2=0.2)
STATES = CHAIN.sector_states()
TRANSLATIONS = symmetry_group(CHAIN.graph, "translations")


def momentum_characters(q: int) -> np.ndarray:
    """χ(T^n) = exp(2πi q n / L) for the chain translations (perm[j] = j − n mod L)."""
    shifts = (L - TRANSLATIONS[:, 0]) % L
    return np.exp(2j * np.pi * q * shifts / L)


def brute_force_projection(psi: np.ndarray, characters, spin_flip) -> np.ndarray:
    perms, flips, chi = group_elements(TRANSLATIONS, L, spin_flip, characters)
    index = {tuple(s): k for k, s in enumerate(STATES)}
    out = np.zeros(len(STATES), complex)
    for k, x in enumerate(STATES):
        for p, f, c in zip(perms, flips, chi):
            out[k] += c * psi[index[tuple(f * x[p])]]
    return out


@pytest.mark.parametrize("q, spin_flip", [(0, 1), (0, -1), (3, 1), (1, None), (2, -1)])
def test_orbit_projection_matches_brute_force(q, spin_flip):
    characters = momentum_characters(q)
    sector = SymmetrySector.build(STATES, TRANSLATIONS, characters=characters, spin_flip=spin_flip)
    rng = np.random.default_rng(q)
    psi = rng.normal(size=len(STATES)) + 1j * rng.normal(size=len(STATES))
    expected = brute_force_projection(psi, characters, spin_flip)
    np.testing.assert_allclose(sector.project(psi), expected, atol=1e-12)
    # the kept orbits span the image of the projector: one dimension per kept orbit
    basis = np.stack([brute_force_projection(e, characters, spin_flip) for e in np.eye(len(STATES))], axis=1)
    assert np.linalg.matrix_rank(basis, tol=1e-9) == sector.n_orbits
    assert sector.orbit_sizes.sum() == np.count_nonzero(sector.orbit >= 0)
    # |ψ_G| is constant on every orbit
    for k in range(sector.n_orbits):
        moduli = np.abs(expected[sector.orbit == k])
        np.testing.assert_allclose(moduli, moduli[0], atol=1e-12)


def test_bad_characters_and_sectors_are_refused():
    with pytest.raises(ValueError, match="one entry per permutation"):
        SymmetrySector.build(STATES, TRANSLATIONS, characters=np.ones(3))
    with pytest.raises(ValueError, match="modulus 1"):
        SymmetrySector.build(STATES, TRANSLATIONS, characters=2 * np.ones(L))
    with pytest.raises(ValueError, match="not a one-dimensional representation"):
        SymmetrySector.build(STATES, TRANSLATIONS, characters=np.exp(1j * np.arange(L) ** 2))
    with pytest.raises(ValueError, match="spin_flip"):
        SymmetrySector.build(STATES, TRANSLATIONS, spin_flip=0)
    with pytest.raises(ValueError, match="not closed under the group"):
        SymmetrySector.build(STATES[:5], TRANSLATIONS)
    with pytest.raises(ValueError, match="spin flip maps the local values"):
        SymmetrySector.build(np.array([[0, 1], [1, 0]]), [[0, 1], [1, 0]], spin_flip=1)  # occupations 0/1
    two = heisenberg(2, pbc=False)
    # the swap of two sites has χ = −1, the flip χ = +1: swap·flip fixes ↑↓ with χ = −1, so ψ_G = 0
    with pytest.raises(ValueError, match="no configuration"):
        SymmetrySector.build(two.sector_states(), [[0, 1], [1, 0]], characters=[1, -1], spin_flip=1)
