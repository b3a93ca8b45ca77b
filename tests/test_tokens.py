"""TokenMap: token values are the mixed-radix numbers of their modes' local indices, first mode most significant;
encode and decode are inverse on every configuration, for one token per mode, grouped tokens and mixed sizes."""

import itertools

import netket as nk
import numpy as np
import pytest

from nqs import TokenMap


def _all_local_indices(sizes):
    return np.array(list(itertools.product(*(range(d) for d in sizes))))


@pytest.mark.parametrize("modes,sizes", [
    (((0,), (1,), (2,)), (2, 2, 2)),                 # one token per site
    (((0, 3), (1, 4), (2, 5)), (2,) * 6),           # spin orbitals: (down, up) of orbital i are modes i and L + i
    (((0, 1), (2, 3), (4, 5)), (2, 3) * 3),          # gauge blocks: matter (2 values) and its link (3 values)
    (((2,), (0, 1), (3, 4, 5)), (2, 3, 2, 2, 3, 2)),  # tokens of different sizes, out of Hilbert order
])
def test_encode_decode_round_trip(modes, sizes):
    tokens = TokenMap(modes, sizes)
    local = _all_local_indices(sizes)
    values = np.asarray(tokens.encode(local))
    np.testing.assert_array_equal(np.asarray(tokens.decode(values)), local)
    assert all((values[:, t] < d).all() for t, d in enumerate(tokens.token_sizes))
    # every value of every token occurs: the map is a bijection onto Π_t {0, …, D_t − 1}
    assert len({tuple(v) for v in values}) == len(local) == np.prod(tokens.token_sizes)
    for t, token in enumerate(modes):  # v_t = Σ_j s_j Π_{l>j} d_l, first mode most significant
        place = [int(np.prod([sizes[m] for m in token[j + 1:]])) for j in range(len(token))]
        np.testing.assert_array_equal(values[:, t], local[:, list(token)] @ place)


def test_identity_grouped_and_of_hilbert():
    hilbert = nk.hilbert.Spin(0.5, 4)
    sites = TokenMap.of_hilbert(hilbert)
    assert sites.is_identity and sites.is_uniform and sites.n_tokens == 4 and sites.token_sizes == (2, 2, 2, 2)
    pairs = sites.grouped([[0, 1], [2, 3]])
    assert pairs.modes == ((0, 1), (2, 3)) and pairs.token_sizes == (4, 4) and not pairs.is_identity
    blocks = TokenMap.of_hilbert(nk.hilbert.Fock(n_max=1) * nk.hilbert.Spin(1) * nk.hilbert.Fock(n_max=1), [[0, 1],
                                                                                                            [2]])
    assert blocks.token_sizes == (6, 2) and blocks.max_token_size == 6 and not blocks.is_uniform
    assert blocks.describe() == {"modes": [[0, 1], [2]], "mode_sizes": [2, 3, 2]}


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="exactly one token"):
        TokenMap(((0,), (0, 1)), (2, 2))
    with pytest.raises(ValueError, match="exactly one token"):
        TokenMap(((0,),), (2, 2))
    with pytest.raises(ValueError, match="at least one mode"):
        TokenMap(((0, 1), ()), (2, 2))
    with pytest.raises(ValueError, match=">= 1"):
        TokenMap(((0,),), (0,))
