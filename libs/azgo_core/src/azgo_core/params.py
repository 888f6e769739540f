"""The library's settings: network, search, self-play and training, one frozen dataclass each.

Each field's default and bounds live here and nowhere else: the library runs on these
defaults, and the service settings (``config``: ``configs/azgo.yaml`` and ``AZGO_*``) build
their fields from them (``config.setting``), so a default is written once. The defaults are
the measured ones (``docs/results/``). Bounds are metadata (``ge``, ``gt``, ``le``, ``lt``)
checked by ``check_bounds`` when an object is made and by pydantic when a config is read.

No torch and no numba here: reading a config must not load them.
"""

from __future__ import annotations

import json
import operator
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

from .coords import MAX_SIZE, MIN_SIZE, check_size

ALGORITHMS = ("puct", "gumbel")

BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def _bounded(default: Any, **bounds: float) -> Any:
    """A dataclass field with a default and bounds (``ge``, ``gt``, ``le``, ``lt``) as metadata."""
    assert set(bounds) <= set(BOUNDS), bounds
    return field(default=default, metadata=bounds)


def check_bounds(obj: Any) -> None:
    """Raise ValueError naming the first field of ``obj`` outside its bounds (None is unbounded)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        for key, limit in f.metadata.items():
            op, sign = BOUNDS[key]
            if not op(value, limit):
                raise ValueError(f"{type(obj).__name__}.{f.name} must be {sign} {limit}, got {value!r}")


def default_and_bounds(cls: type, name: str) -> tuple[Any, dict[str, float]]:
    """The default and the bounds of ``cls``'s field ``name`` (what a settings field is built from)."""
    f: Field = {f.name: f for f in fields(cls)}[name]
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return default, dict(f.metadata)


@dataclass(frozen=True)
class NetConfig:
    """Architecture of an ``AZNet``; stored as JSON in every model file.

    board_size: N; history: positions of history in the input (C = 2*history+1 planes);
    blocks: residual blocks; channels: filters per conv (F); value_hidden: value FC width;
    aux_heads: ownership, score and opponent-reply heads; global_pooling: pooled blocks (see
    ``model``'s docstring). Files saved before the last two existed load with both false.
    """

    board_size: int = _bounded(9, ge=MIN_SIZE, le=MAX_SIZE)
    history: int = _bounded(8, ge=1, le=16)
    blocks: int = _bounded(4, ge=0, le=64)
    channels: int = _bounded(48, ge=1, le=1024)
    value_hidden: int = _bounded(64, ge=1, le=4096)
    aux_heads: bool = False
    global_pooling: bool = False

    def __post_init__(self) -> None:
        check_size(self.board_size)
        for name in ("history", "blocks", "channels", "value_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"NetConfig.{name} must be an integer, got {value!r}")
        check_bounds(self)
        for name in ("aux_heads", "global_pooling"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"NetConfig.{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def pooled_blocks(self) -> tuple[int, ...]:
        """0-based indices of the blocks with global pooling: 1, 4, 7, ... (none without it)."""
        return tuple(range(1, self.blocks, 3)) if self.global_pooling else ()

    @property
    def in_planes(self) -> int:
        """C, the number of input planes: ``2*history + 1``."""
        return 2 * self.history + 1

    @property
    def num_actions(self) -> int:
        """N*N + 1 (pass is the last action)."""
        return self.board_size * self.board_size + 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NetConfig:
        """Parse ``to_json`` output; unknown or missing fields are refused by name."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"architecture is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"architecture must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data) - set(_ADDED_LATER))
        if unknown or missing:
            raise ValueError(f"architecture fields: unknown {unknown}, missing {missing}")
        return cls(**{**_ADDED_LATER, **data})


# Architecture fields added after the first models were saved, and the value that describes
# those older files: a model written before the auxiliary heads loads as a plain
# policy-value net (no heads, no pooling), exactly as it was trained.
_ADDED_LATER = {"aux_heads": False, "global_pooling": False}


@dataclass(frozen=True)
class SearchConfig:
    """Search and move-choice settings; defaults follow AlphaZero, KataGo and Leela Zero."""

    algorithm: str = "puct"
    """Root algorithm: 'puct' (AlphaZero) or 'gumbel' (Gumbel AlphaZero; Danihelka et al. 2022)."""
    visits: int = _bounded(100, ge=1)
    """Root child visits of a full search (a reused subtree's visits count); under gumbel the
    simulations of a full search."""
    cheap_visits: int = _bounded(25, ge=1)
    """Visits of a cheap search (KataGo's playout-cap randomization); under gumbel its simulations."""
    max_considered: int = _bounded(16, ge=1, le=362)
    """Gumbel only: the m actions sampled at the root (Gumbel-Top-k, m = min(this, legal moves))
    among which Sequential Halving spends the simulations (the paper: 16 on 9x9 Go)."""
    c_visit: float = _bounded(50.0, ge=0)
    """Gumbel only: sigma(q) = (c_visit + max_b N(b)) * c_scale * q (the paper: 50)."""
    c_scale: float = _bounded(1.0, gt=0)
    """Gumbel only: see ``c_visit`` (the paper: 1.0); q is the completed Q mapped to [0, 1]."""
    full_search_prob: float = _bounded(0.25, ge=0, le=1)
    """Share of moves with a full search; only those are policy targets (KataGo: 0.25)."""
    c_puct: float = _bounded(1.25, gt=0)
    """Exploration constant c_puct (AlphaZero's pb_c_init)."""
    c_base: float = 19652.0
    """Visits over which c(s) grows logarithmically (AlphaZero's pb_c_base)."""
    fpu_reduction: float = 0.25
    """First-play urgency: unvisited children get the parent's Q minus this * sqrt(visited P)."""
    noise_fraction: float = _bounded(0.25, ge=0, le=1)
    """Dirichlet noise share at the root of full searches (AlphaZero: 0.25); unused under gumbel."""
    noise_alpha_total: float = 10.83
    """Dirichlet alpha times the number of legal moves (KataGo: 0.03 * 361); unused under gumbel."""
    temperature: float = 1.0
    """Move choice proportional to N^(1/T) during the opening. Under gumbel only its sign
    counts: above 0, cheap searches of the opening draw Gumbel noise too (the move is then a
    sample of the improved policy); 0 plays the best move without noise."""
    temperature_moves: int | None = None
    """Opening length for ``temperature``; default N*N // 8 (30 on 19x19 in AlphaGo Zero)."""
    final_temperature: float = 0.0
    """Temperature after the opening; 0 plays the most visited move. Under gumbel, as
    ``temperature``: above 0, cheap searches after the opening draw Gumbel noise. Full searches
    under gumbel always draw it (their candidates must be sampled for pi' to improve the policy)."""
    resign_threshold: float = _bounded(-0.9, ge=-1, le=1)
    """Resign when the root value of the side to move falls below this."""
    no_resign_share: float = _bounded(0.1, ge=0, le=1)
    """Share of games that never resign, to measure false resignations (AlphaGo Zero: 10%)."""
    resign_calibration_games: int = _bounded(20, ge=0)
    """0: ``resign_threshold`` as given. Otherwise the threshold is calibrated as in AlphaGo Zero
    (``selfplay.ResignCalibration``): no resignation until this many no-resign games have been
    won, then the highest threshold below ``resign_threshold`` that would have falsely resigned
    at most ``resign_false_positives`` of them."""
    resign_false_positives: float = _bounded(0.05, ge=0, le=1)
    """Target share of false resignations for the calibration (AlphaGo Zero: below 5%)."""
    reuse_tree: bool = True
    """Keep the chosen child's subtree for the next move; ignored under gumbel (every search
    starts at a fresh root, so its visits follow the halving schedule)."""
    settled_pass: bool = True
    """Pass only after the opponent's pass or when the board is divided: no empty region the
    mover may play in touches both colours (``mcts``: searched freely, early passes take self-play over)."""
    history: int = _bounded(8, ge=1, le=16)
    """Positions of stone history in the input planes."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"search algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        check_bounds(self)

    @property
    def gumbel(self) -> bool:
        return self.algorithm == "gumbel"

    def opening_moves(self, size: int) -> int:
        return self.temperature_moves if self.temperature_moves is not None else size * size // 8


@dataclass(frozen=True)
class SelfPlayConfig:
    """A self-play runner's games: board, how many at once, the network batch, resignation, the search."""

    board_size: int = _bounded(9, ge=MIN_SIZE, le=MAX_SIZE)
    """Board size N (5 to 19)."""
    komi: float = _bounded(7.5, ge=-361, le=361)
    """Komi given to white (Tromp-Taylor area scoring)."""
    parallel_games: int = _bounded(32, ge=1, le=4096)
    """Games played at once in this process."""
    batch_size: int = _bounded(32, ge=1, le=4096)
    """Largest network batch; leaves beyond it go to further calls in the same step."""
    move_cap: int | None = None
    """Moves after which a game ends; default 2*N*N."""
    resign_min_moves: int | None = None
    """No resignation before this many moves; default N*N // 4 (20 on 9x9)."""
    resign_max_share: float = _bounded(0.5, ge=0, le=1)
    """A new game may resign only while fewer than this share of the last ``RESIGN_WINDOW``
    finished games were resigned: the rest are played out, so endgames stay in the data."""
    search_threads: int = _bounded(1, ge=0, le=256)
    """Threads of the compiled search over the games (``Forest``); 0: every core this process
    may use. The same games for a fixed seed whatever the number."""
    overlap: bool = False
    """Pipeline the network and the search over two halves of the games (``Forest``): while the
    network evaluates one half's leaves on a thread of its own, the search descends the other
    half's. For a GPU host; on a CPU worker both stages want the same cores."""
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def min_moves_to_resign(self) -> int:
        n = self.resign_min_moves
        return self.board_size ** 2 // 4 if n is None else n


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults: AlphaZero's SGD (momentum 0.9, c = 1e-4) at a
    learning rate for a 128-position batch and the small 9x9 default net.

    window: how many of the most recent policy-target positions the sampler draws from.
    grad_clip: clip the global gradient norm to this (None: no clipping, norm still reported).
    """

    batch_size: int = _bounded(128, ge=1)
    optimizer: str = "sgd"  # 'sgd' (momentum, L2 in the loss) or 'adamw' (decoupled decay)
    lr: float = _bounded(0.02, gt=0)
    momentum: float = _bounded(0.9, ge=0, lt=1)
    weight_decay: float = _bounded(1e-4, ge=0)
    warmup_steps: int = _bounded(100, ge=0)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = _bounded(0.1, gt=0)
    value_loss_weight: float = _bounded(1.0, ge=0)
    ownership_loss_weight: float = _bounded(1.5, ge=0)
    score_loss_weight: float = _bounded(0.25, ge=0)
    opponent_policy_loss_weight: float = _bounded(0.15, ge=0)
    grad_clip: float | None = _bounded(None, gt=0)
    window: int = _bounded(50_000, ge=1)

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"TrainConfig.optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        for name in ("batch_size", "window", "warmup_steps"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"TrainConfig.{name} must be an integer, got {getattr(self, name)!r}")
        check_bounds(self)
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(m < 0 for m in self.lr_milestones):
            raise ValueError(f"TrainConfig.lr_milestones must be increasing and >= 0, got {self.lr_milestones!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip!r}")
