"""azgo_core: the pure library behind azgo (no sockets, threads or environment reads).

Modules:
    coords    coordinate conversion (flat index, GTP vertex, SGF point); the only converter
    board     compiled board: captures, liberties, superko hashing, legal mask
    position  Position, the Python-facing game state built on the board
    features  network input planes and the 8 dihedral symmetries
    model     the torch ResNet, safetensors save/load, batched evaluator
    search    MCTS (MctsPlayer) and the batched self-play runner
    records   GameRecord and its msgpack/lz4 batch encoding
    sgf       SGF export of game records
    train     the training step
    gtp       a GTP v2 engine over Position and a player
    match     the match referee: one game or many between two players, random player
    rating    Bradley-Terry / Elo fit with intervals, match score intervals
    cli       the ``azgo`` command line
"""

__version__ = "0.1.0"
