"""Compile azgo's numba kernels into $NUMBA_CACHE_DIR while the image is built.

Without it every new container compiles the board, search and feature kernels before its
first move (about 20 s of a core each: three self-play replicas starting together on a small
machine wait a minute). The build runs what the services run, on a tiny board: self-play
games (board, search, features), their replay with ``Position`` (the broker's validation)
and training samples from them (the learner), and the broker's compiled batch check. The cache is keyed by each source file's path
and modification time, so it holds as long as the image's sources; a container on another
CPU model compiles again into the same (writable) folder.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from azgo_core import batchcheck
from azgo_core.model import AZNet, NetConfig, make_evaluator
from azgo_core.position import Position
from azgo_core.records import decode_batch, encode_batch
from azgo_core.search import SearchConfig
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner
from azgo_core.train import PositionSampler

SIZE, HISTORY = 5, 2


def main() -> None:
    t0 = time.monotonic()
    torch.manual_seed(0)
    net = AZNet(NetConfig(board_size=SIZE, history=HISTORY, blocks=1, channels=8, value_hidden=8))
    config = SelfPlayConfig(board_size=SIZE, parallel_games=4, batch_size=4,
                            search=SearchConfig(visits=8, cheap_visits=4, history=HISTORY))
    records = SelfPlayRunner(config, make_evaluator(net), model_generation=0, worker_id="build", seed=0).play(4)
    for record in decode_batch(encode_batch(records)):
        position = Position(record.board_size, record.komi)
        for move in record.moves:
            position.legal_mask()
            position.play(int(move))
        position.score()
    sampler = PositionSampler(records, history=HISTORY, window=1000)
    sampler.sample(8, np.random.default_rng(0))
    batchcheck.warm_up()  # the broker's compiled batch check
    print(f"numba kernels compiled into {os.environ.get('NUMBA_CACHE_DIR', '(default)')} "
          f"in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
