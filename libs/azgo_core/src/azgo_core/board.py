"""The compiled Go board: captures, suicide, positional superko, Tromp-Taylor area score.

A board of size N is one ``int32`` vector ``s`` (so that copying a board is one memcpy),
over a padded 1-D grid of ``P = (N+2)*(N+1)`` points: one border row above and below and
one border column shared by the right edge of a row and the left edge of the next. The four
neighbours of point ``p`` are ``p-1, p+1, p-W, p+W`` with ``W = N+1``; ``coords.to_padded``
converts from flat indices.

Layout of ``s`` (each section ``P`` long, then the scalars):

==========  =============================================================================
section     meaning
==========  =============================================================================
COLOR       EMPTY, BLACK, WHITE or BORDER
NEXT        circular linked list of the stones of a group
HEAD        the group's representative stone; group fields below are read at the head
LIBS        pseudo-liberties: empty neighbours counted once per adjacent stone
LSUM        sum of the pseudo-liberties' indices
LSQ         sum of their squares: the group is in atari iff LIBS*LSQ == LSUM**2
            (every pseudo-liberty is the same point), and that point is LSUM/LIBS
SIZE        number of stones
scalars     TO_PLAY, PASSES (consecutive), NMOVES, HASH_LO/HASH_HI (Zobrist hash of the
            stones, side to move excluded: positional superko), LAST (padded, -1 pass)
==========  =============================================================================

Positional superko needs the hashes of every earlier position: a ``history`` vector of
``uint64`` plus a 4096-bit bloom filter (``uint64[64]``, indexed by the hash's low 12 bits)
makes the common case (a position never seen) one bit test. Kernels take the game's history and, for search trees, a second
short ``path`` of hashes below the root.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY, BLACK, WHITE, BORDER = 0, 1, 2, 3

# legality codes returned by ``check_move``
LEGAL, OCCUPIED, SUICIDE, SUPERKO = 0, 1, 2, 3
REASONS = ("legal", "occupied", "suicide", "superko")

# scalar slots after the seven P-long sections: s[scalar_base(P) + TO_PLAY], ...
TO_PLAY, PASSES, NMOVES, HASH_LO, HASH_HI, LAST = range(6)
NUM_SCALARS = 8
SECTIONS = 7
BLOOM_WORDS = 64


@njit(cache=True, inline="always")
def scalar_base(P):
    """Index of the first scalar slot of a state whose sections are P long (``padded_points``), in kernels."""
    return SECTIONS * P


def scalar_index(size: int, slot: int) -> int:
    """Index of scalar ``slot`` in a ``size`` board's state, for Python callers (a kernel's call
    from Python costs a dispatch)."""
    return SECTIONS * padded_points(size) + slot


def padded_points(size: int) -> int:
    """P, the length of one section of the padded board."""
    return (size + 2) * (size + 1)


def state_length(size: int) -> int:
    return SECTIONS * padded_points(size) + NUM_SCALARS


def zobrist_table(size: int, seed: int = 20161027) -> np.ndarray:
    """Random keys ``uint64 [3, P]`` indexed by (colour, padded point); fixed seed."""
    rng = np.random.default_rng(seed + size)
    return rng.integers(1, 2**63, size=(3, padded_points(size)), dtype=np.uint64)


@njit(cache=True)
def get_hash(s, P):
    base = scalar_base(P)
    lo = np.uint64(np.uint32(s[base + HASH_LO]))
    hi = np.uint64(np.uint32(s[base + HASH_HI]))
    return (hi << np.uint64(32)) | lo


@njit(cache=True)
def _set_hash(s, P, h):
    base = scalar_base(P)
    s[base + HASH_LO] = np.int32(np.uint32(h & np.uint64(0xFFFFFFFF)))
    s[base + HASH_HI] = np.int32(np.uint32(h >> np.uint64(32)))


@njit(cache=True)
def init_board(s, N):
    """Empty board, black to move."""
    W = N + 1
    P = (N + 2) * W
    s[:] = 0
    for p in range(P):
        r, c = p // W, p % W
        if r == 0 or r == N + 1 or c == 0:
            s[p] = BORDER
        s[2 * P + p] = p  # HEAD
        s[P + p] = p  # NEXT
    s[scalar_base(P) + TO_PLAY] = BLACK
    s[scalar_base(P) + LAST] = -1


@njit(cache=True, inline="always")
def _in_atari(s, P, g):
    libs = np.int64(s[3 * P + g])
    lsum = np.int64(s[4 * P + g])
    return libs > 0 and libs * np.int64(s[5 * P + g]) == lsum * lsum


@njit(cache=True)
def seen_before(h, history, n_history, bloom, path, n_path):
    """True if hash ``h`` is in the game history (via the bloom filter) or on the path."""
    b = h & np.uint64(4095)
    if bloom[b >> np.uint64(6)] & (np.uint64(1) << (b & np.uint64(63))):
        for i in range(n_history):
            if history[i] == h:
                return True
    for i in range(n_path):
        if path[i] == h:
            return True
    return False


@njit(cache=True)
def bloom_add(bloom, h):
    b = h & np.uint64(4095)
    bloom[b >> np.uint64(6)] |= np.uint64(1) << (b & np.uint64(63))


@njit(cache=True)
def check_move(s, N, p, colour, zob, history, n_history, bloom, path, n_path):
    """Legality of stone ``colour`` at padded point ``p``: LEGAL, OCCUPIED, SUICIDE or SUPERKO.

    The hash of the position after the move is the current hash, the new stone and every
    captured group (an opposing neighbour group in atari) xor-ed out.
    """
    W = N + 1
    P = (N + 2) * W
    if s[p] != EMPTY:
        return OCCUPIED
    opp = 3 - colour
    h = get_hash(s, P) ^ zob[colour, p]
    alive = False
    c0 = -1
    c1 = -1
    c2 = -1
    for k in range(4):
        n = p - 1 if k == 0 else (p + 1 if k == 1 else (p - W if k == 2 else p + W))
        cn = s[n]
        if cn == EMPTY:
            alive = True
        elif cn == colour:
            if not _in_atari(s, P, s[2 * P + n]):
                alive = True
        elif cn == opp:
            g = s[2 * P + n]
            if _in_atari(s, P, g) and g != c0 and g != c1 and g != c2:
                alive = True
                if c0 < 0:
                    c0 = g
                elif c1 < 0:
                    c1 = g
                else:
                    c2 = g
                x = g
                while True:
                    h ^= zob[opp, x]
                    x = s[P + x]
                    if x == g:
                        break
    if not alive:
        return SUICIDE
    if seen_before(h, history, n_history, bloom, path, n_path):
        return SUPERKO
    return LEGAL


@njit(cache=True)
def _merge(s, P, a, b):
    """Join group ``b`` into group ``a`` (the larger keeps its head)."""
    if s[6 * P + a] < s[6 * P + b]:
        a, b = b, a
    x = b
    while True:
        s[2 * P + x] = a
        x = s[P + x]
        if x == b:
            break
    t = s[P + a]
    s[P + a] = s[P + b]
    s[P + b] = t
    for sec in (3, 4, 5, 6):
        s[sec * P + a] += s[sec * P + b]
    return a


@njit(cache=True)
def _capture(s, N, g, colour, zob):
    """Remove group ``g`` of ``colour``; neighbours regain liberties. Returns stones removed."""
    W = N + 1
    P = (N + 2) * W
    h = get_hash(s, P)
    count = 0
    x = g
    while True:
        s[x] = EMPTY
        h ^= zob[colour, x]
        count += 1
        x = s[P + x]
        if x == g:
            break
    _set_hash(s, P, h)
    x = g
    while True:
        for k in range(4):
            n = x - 1 if k == 0 else (x + 1 if k == 1 else (x - W if k == 2 else x + W))
            if s[n] == BLACK or s[n] == WHITE:
                hn = s[2 * P + n]
                s[3 * P + hn] += 1
                s[4 * P + hn] += x
                s[5 * P + hn] += x * x
        nx = s[P + x]
        s[P + x] = x
        s[2 * P + x] = x
        x = nx
        if x == g:
            break
    return count


@njit(cache=True)
def play_move(s, N, p, zob):
    """Play for the side to move at padded point ``p`` (-1 = pass); the move must be legal.

    Returns the number of stones captured.
    """
    W = N + 1
    P = (N + 2) * W
    base = scalar_base(P)
    colour = s[base + TO_PLAY]
    opp = 3 - colour
    s[base + TO_PLAY] = opp
    s[base + NMOVES] += 1
    s[base + LAST] = p
    if p < 0:
        s[base + PASSES] += 1
        return 0
    s[base + PASSES] = 0
    s[p] = colour
    s[P + p] = p
    s[2 * P + p] = p
    s[6 * P + p] = 1
    libs = 0
    lsum = 0
    lsq = 0
    for k in range(4):
        n = p - 1 if k == 0 else (p + 1 if k == 1 else (p - W if k == 2 else p + W))
        cn = s[n]
        if cn == EMPTY:
            libs += 1
            lsum += n
            lsq += n * n
        elif cn != BORDER:
            hn = s[2 * P + n]
            s[3 * P + hn] -= 1
            s[4 * P + hn] -= p
            s[5 * P + hn] -= p * p
    s[3 * P + p] = libs
    s[4 * P + p] = lsum
    s[5 * P + p] = lsq
    _set_hash(s, P, get_hash(s, P) ^ zob[colour, p])
    g = p
    for k in range(4):
        n = p - 1 if k == 0 else (p + 1 if k == 1 else (p - W if k == 2 else p + W))
        if s[n] == colour and s[2 * P + n] != g:
            g = _merge(s, P, g, s[2 * P + n])
    captured = 0
    for k in range(4):
        n = p - 1 if k == 0 else (p + 1 if k == 1 else (p - W if k == 2 else p + W))
        if s[n] == opp and s[3 * P + s[2 * P + n]] == 0:
            captured += _capture(s, N, s[2 * P + n], opp, zob)
    return captured


@njit(cache=True)
def legal_mask(s, N, zob, history, n_history, bloom, path, n_path, out):
    """Fill ``out`` (bool [N*N+1], flat order) with the legal moves of the side to move.

    Fast path: a point with an empty neighbour and no opposing neighbour in atari captures
    nothing, so its new hash is one xor away; only captures walk the stones (``check_move``).
    """
    W = N + 1
    P = (N + 2) * W
    colour = s[scalar_base(P) + TO_PLAY]
    opp = 3 - colour
    h0 = get_hash(s, P)
    for r in range(N):
        for c in range(N):
            p = (r + 1) * W + c + 1
            i = r * N + c
            if s[p] != EMPTY:
                out[i] = False
                continue
            simple = False
            for k in range(4):
                n = p - 1 if k == 0 else (p + 1 if k == 1 else (p - W if k == 2 else p + W))
                cn = s[n]
                if cn == EMPTY:
                    simple = True
                elif cn == opp and _in_atari(s, P, s[2 * P + n]):
                    simple = False
                    break
            if simple:
                out[i] = not seen_before(h0 ^ zob[colour, p], history, n_history, bloom, path, n_path)
            else:
                out[i] = check_move(s, N, p, colour, zob, history, n_history, bloom, path, n_path) == LEGAL
    out[N * N] = True


@njit(cache=True)
def _flood_region(s, W, p, seen, stack):
    """Mark the empty region of empty padded point ``p`` in ``seen``; returns (its size, the
    colours it touches: bit 1 black, bit 2 white). ``stack``: int32 scratch of P entries; on
    return ``stack[:size]`` holds the region's points (each is written there when popped)."""
    touches = 0
    size = 0
    top = 1
    stack[0] = p
    seen[p] = 1
    while top > size:
        # stack[:size] are the points done, stack[size:top] those waiting: a queue in place
        x = stack[size]
        size += 1
        for k in range(4):
            n = x - 1 if k == 0 else (x + 1 if k == 1 else (x - W if k == 2 else x + W))
            cn = s[n]
            if cn == EMPTY:
                if not seen[n]:
                    seen[n] = 1
                    stack[top] = n
                    top += 1
            elif cn == BLACK:
                touches |= 1
            elif cn == WHITE:
                touches |= 2
    return size, touches


@njit(cache=True)
def settled(s, N, legal):
    """Whether the board is divided for the side to move: every point where it may legally play
    (``legal``, bool [N*N+1], flat, from ``legal_mask``) lies in an empty region that touches
    stones of one colour only, so two passes now would count every empty point as someone's
    territory. A region that touches both colours (dame, or dead stones not yet captured) or
    no stone at all is still open."""
    W = N + 1
    P = (N + 2) * W
    seen = np.zeros(P, dtype=np.uint8)
    stack = np.empty(P, dtype=np.int32)
    for r in range(N):
        for c in range(N):
            p = (r + 1) * W + c + 1
            if legal[r * N + c] and not seen[p]:
                _, touches = _flood_region(s, W, p, seen, stack)
                if touches != 1 and touches != 2:
                    return False
    return True


@njit(cache=True)
def ownership(s, N, out):
    """Fill ``out`` (int8 [N*N], flat) with each point's owner under Tromp-Taylor area scoring
    and return it: the colour of its stone, or for an empty point the one colour its empty
    region reaches (BLACK or WHITE), else EMPTY (dame: the region reaches both colours or
    none). Stones count as they stand: a dead stone is its colour's until it is captured."""
    W = N + 1
    P = (N + 2) * W
    seen = np.zeros(P, dtype=np.uint8)
    stack = np.empty(P, dtype=np.int32)
    for r in range(N):
        for c in range(N):
            p = (r + 1) * W + c + 1
            cp = s[p]
            if cp == BLACK or cp == WHITE:
                out[r * N + c] = cp
            elif not seen[p]:
                size, touches = _flood_region(s, W, p, seen, stack)
                owner = BLACK if touches == 1 else (WHITE if touches == 2 else EMPTY)
                for i in range(size):
                    q = stack[i]
                    out[(q // W - 1) * N + q % W - 1] = owner
    return out


@njit(cache=True)
def area_score(s, N):
    """Tromp-Taylor area: black points minus white points (stones plus empty regions that
    reach only one colour, as ``ownership`` assigns them). Komi is not included."""
    owners = ownership(s, N, np.empty(N * N, dtype=np.int8))
    score = 0
    for i in range(N * N):
        if owners[i] == BLACK:
            score += 1
        elif owners[i] == WHITE:
            score -= 1
    return score


@njit(cache=True)
def stones_flat(s, N, out):
    """Fill ``out`` (int8 [N*N]) with the colour at every point, flat order."""
    W = N + 1
    for r in range(N):
        for c in range(N):
            out[r * N + c] = s[(r + 1) * W + c + 1]
