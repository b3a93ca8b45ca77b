"""Spin-1/2 operators written as sums of Pauli strings, turned into NetKet and QuTiP operators by two
independent code paths (NetKet's `nk.operator.spin` products; QuTiP `tensor` products), so that
`nqs.exact.check_operators` compares two real constructions.

A term is (coefficient, ((site, "X"|"Y"|"Z"|"+"|"-"), ...)); σ± = (X ± iY)/2, σ⁻ = |↓⟩⟨↑| (QuTiP `sigmam()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce

import netket as nk
import numpy as np
import qutip

Term = tuple[complex, tuple[tuple[int, str], ...]]

_NETKET = {
    "X": nk.operator.spin.sigmax,
    "Y": nk.operator.spin.sigmay,
    "Z": nk.operator.spin.sigmaz,
    "+": nk.operator.spin.sigmap,
    "-": nk.operator.spin.sigmam,
}
_QUTIP = {"X": qutip.sigmax, "Y": qutip.sigmay, "Z": qutip.sigmaz, "+": qutip.sigmap, "-": qutip.sigmam}


def _is_real(terms: Iterable[Term]) -> bool:
    """Real coefficients and an even number of Y factors per term (products on one site are not used)."""
    return all(np.imag(c) == 0 and sum(p == "Y" for _, p in ops) % 2 == 0 for c, ops in terms)


def to_netket(hilbert: nk.hilbert.Spin, terms: Sequence[Term]):
    """Σ_terms c Π σ^p_site as a NetKet (JAX) LocalOperator; real dtype when every term is real."""
    total = nk.operator.LocalOperator(hilbert, dtype=np.complex128)
    for coeff, ops in terms:
        if not ops:
            total = total + coeff
            continue
        factors = [_NETKET[p](hilbert, site, dtype=np.complex128) for site, p in ops]
        total = total + coeff * reduce(lambda a, b: a @ b, factors)
    if not _is_real(terms):
        return total
    return nk.operator.LocalOperator(
        hilbert,
        [np.real(m) for m in total.operators],
        total.acting_on,
        constant=float(np.real(total.constant)),
        dtype=np.float64,
    )


def to_qutip(n_sites: int, terms: Sequence[Term]) -> qutip.Qobj:
    """The same sum built from QuTiP `tensor` products (site 0 most significant, as in NetKet)."""
    total = qutip.qzero([2] * n_sites)
    for coeff, ops in terms:
        per_site: dict[int, qutip.Qobj] = {}
        for site, p in ops:
            per_site[site] = per_site.get(site, qutip.qeye(2)) * _QUTIP[p]()
        total = total + coeff * qutip.tensor([per_site.get(i, qutip.qeye(2)) for i in range(n_sites)])
    return total


def scaled(terms: Sequence[Term], unit: float) -> list[Term]:
    """Each Pauli matrix multiplied by `unit` (1 for Pauli units, 1/2 for spin-1/2 units S = σ/2)."""
    return [(c * unit ** len(ops), ops) for c, ops in terms]
