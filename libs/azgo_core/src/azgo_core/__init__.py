"""azgo_core: the pure library behind azgo (no sockets, threads or environment reads).

The public API is below (``__all__``): ``from azgo_core import Position, AZNet, SelfPlayRunner``.
Names load lazily, on first use, so that ``import azgo_core.config`` (every service) does not
pull in torch or the compiled kernels. The modules behind them:

    coords    coordinate conversion (flat index, GTP vertex, SGF point); the only converter
    board     compiled board: captures, liberties, superko hashing, legal mask, Tromp-Taylor score
    position  Position, the Python-facing game state built on the board
    features  network input planes and the 8 dihedral symmetries
    params    NetConfig, SearchConfig, SelfPlayConfig, TrainConfig: each default and bound once
    files     atomic writes and file digests (no torch)
    model     the torch ResNet (KataGo's auxiliary heads), safetensors save/load, batched evaluator
    mcts      compiled PUCT tree kernels; gumbel: Gumbel-Top-k and Sequential Halving at the root
    search    the batched forest over many games (MctsPlayer for one), its configuration
    selfplay  the self-play runner: games, resignation calibration, records
    records   GameRecord and its msgpack/lz4 batch encoding (bounded decoding)
    verify    a record's replay: every visit and result checked against the rules
    batchcheck  the same checks compiled, for the broker's incoming batches
    health    training-health figures of self-play games (colour share, resignations, passes)
    sgf       SGF export and import of game records
    train     the training step, its sampler and losses
    gtp       a GTP v2 engine over Position and a player
    match     the match referee: distinct games between two players, the random player
    rating    Bradley-Terry / Elo fit with intervals, match score intervals
    config    the settings (configs/azgo.yaml + AZGO_* overrides); config_reference: its docs page
    protocol  the wire messages between the services

The ``azgo`` command is not here: it lives with the operator's tools, a layer above this library.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that owns it (one home for every concept)
_PUBLIC: dict[str, str] = {
    **dict.fromkeys(["BLACK", "WHITE", "EMPTY", "IllegalMove", "Position"], "position"),
    **dict.fromkeys(["CoordinateError", "from_gtp", "to_gtp", "from_flat", "to_flat", "pass_move", "num_actions"], "coords"),
    **dict.fromkeys(["num_planes", "apply_symmetry_planes", "apply_symmetry_policy"], "features"),
    **dict.fromkeys(["NetConfig", "SearchConfig", "SelfPlayConfig", "TrainConfig"], "params"),
    **dict.fromkeys(["AZNet", "NetOutputs", "ModelMeta", "ModelFileError", "CorruptModelError",
                     "TruncatedModelError", "WrongBoardSizeError", "NotAModelError",
                     "load_model", "make_evaluator", "resolve_device", "save_model", "serialize_model"], "model"),
    **dict.fromkeys(["Evaluator", "Forest", "MctsPlayer", "choose_move", "uniform_evaluator"], "search"),
    **dict.fromkeys(["ResignCalibration", "RunnerStats", "SelfPlayRunner"], "selfplay"),
    **dict.fromkeys(["GameRecord", "RecordError", "decode_batch", "encode_batch"], "records"),
    **dict.fromkeys(["atomic_write", "file_sha256"], "files"),
    **dict.fromkeys(["check_record"], "verify"),
    **dict.fromkeys(["HealthWindow", "game_health"], "health"),
    **dict.fromkeys(["from_sgf_moves", "to_sgf"], "sgf"),
    **dict.fromkeys(["PositionSampler", "make_optimizer", "train_step"], "train"),
    **dict.fromkeys(["GtpEngine"], "gtp"),
    **dict.fromkeys(["MatchResult", "RandomPlayer", "play_game", "play_match"], "match"),
    **dict.fromkeys(["fit_ratings", "score_interval"], "rating"),
    **dict.fromkeys(["ConfigError", "Settings", "load_settings"], "config"),
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'azgo_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
