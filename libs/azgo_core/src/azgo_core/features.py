"""Network input planes and the eight board symmetries.

Planes (AlphaGo Zero, history H, default 8), for the side to move at time t, each ``[N, N]``:

=========  ==========================================================
plane      content
=========  ==========================================================
2k         stones of the side to move at time t-k (k = 0 .. H-1)
2k + 1     stones of the opponent at time t-k
2H         all ones if black is to move, zeros if white
=========  ==========================================================

Positions before the first move are empty boards. dtype ``uint8``; the model casts to float.

Symmetries: the dihedral group of the square, ``k`` in 0..7 (k = 0 is the identity; bit 0
flips rows, bit 1 flips columns, bit 2 transposes, applied in that order). They act on
planes ``[..., N, N]`` and on policies ``[..., N*N+1]`` (pass stays pass) through one
permutation, so a planes/policy pair stays consistent.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NUM_SYMMETRIES = 8


def num_planes(history: int) -> int:
    return 2 * history + 1


@njit(cache=True)
def planes_from_history(stones, count, to_play, out):
    """Write planes into ``out`` (uint8 [2H+1, N, N]).

    ``stones``: int8 [>=count, N*N], the colour of every point, most recent position first;
    ``count`` of them are valid (older ones are empty boards). ``to_play``: 1 black, 2 white.
    """
    H = (out.shape[0] - 1) // 2
    N = out.shape[1]
    opp = 3 - to_play
    for k in range(H):
        if k < count:
            for i in range(N * N):
                v = stones[k, i]
                out[2 * k, i // N, i % N] = 1 if v == to_play else 0
                out[2 * k + 1, i // N, i % N] = 1 if v == opp else 0
        else:
            out[2 * k, :, :] = 0
            out[2 * k + 1, :, :] = 0
    out[2 * H, :, :] = 1 if to_play == 1 else 0


def symmetry_perm(size: int, k: int) -> np.ndarray:
    """int64 [N*N] with ``transformed_flat[i] = original_flat[perm[i]]``."""
    if not 0 <= k < NUM_SYMMETRIES:
        raise ValueError(f"symmetry must be in 0..7, got {k}")
    grid = np.arange(size * size).reshape(size, size)
    return _transform(grid, k).reshape(-1).copy()


def _transform(a: np.ndarray, k: int) -> np.ndarray:
    """Apply symmetry ``k`` to the last two axes of ``a``."""
    if k & 1:
        a = a[..., ::-1, :]
    if k & 2:
        a = a[..., :, ::-1]
    if k & 4:
        a = np.swapaxes(a, -1, -2)
    return a


def inverse_symmetry(k: int) -> int:
    """The symmetry that undoes ``k``."""
    # flips commute with themselves; with a transpose, the two flips trade places
    if k & 4 and (k & 3) in (1, 2):
        return k ^ 3
    return k


def apply_symmetry_planes(planes: np.ndarray, k: int) -> np.ndarray:
    """Planes ``[..., N, N]`` under symmetry ``k`` (a new contiguous array)."""
    return np.ascontiguousarray(_transform(planes, k))


def apply_symmetry_policy(pi: np.ndarray, k: int) -> np.ndarray:
    """Policy ``[..., N*N+1]`` under symmetry ``k``; the pass entry is unchanged."""
    n2 = pi.shape[-1] - 1
    size = int(round(n2**0.5))
    perm = np.append(symmetry_perm(size, k), n2)
    return pi[..., perm]
