"""A custom self-play worker: ship only games of some length, and time the network.

Run it like the stock worker (same arguments, same config):

    python services/selfplay/examples/custom_worker.py --config configs/azgo.yaml --worker-id custom-1

It overrides two of ``SelfPlayWorker``'s hooks:

    make_evaluator(net, device)  wraps the stock evaluator to add up the seconds spent in the
                                 network (a place for TensorRT, ONNX Runtime, a remote server...)
    on_games_finished(records)   drops games shorter than ``min_moves`` (say, early resignations
                                 you do not want to train on) and counts games per generation

and reports what it did when it stops. Everything else (model sync, outbox, reconnects,
heartbeats) is the stock worker's.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

from azgo_selfplay import SelfPlayWorker, main

log = logging.getLogger("azgo.selfplay.custom")

MIN_MOVES = 4


class ShortGameFilter(SelfPlayWorker):
    """Ships games of at least ``min_moves`` moves and keeps a few figures about them."""

    min_moves = MIN_MOVES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped = 0
        self.by_generation: Counter[int] = Counter()
        self.nn_seconds = 0.0

    def make_evaluator(self, net, device):
        evaluate = super().make_evaluator(net, device)

        def timed(planes):  # planes uint8 [B, C, N, N] -> (logits [B, N*N+1], value [B])
            t0 = time.perf_counter()
            out = evaluate(planes)
            self.nn_seconds += time.perf_counter() - t0
            return out

        return timed

    def on_games_finished(self, records):
        kept = [r for r in records if r.num_moves >= self.min_moves]
        self.dropped += len(records) - len(kept)
        self.by_generation.update(r.model_generation for r in kept)
        return kept

    def run(self) -> int:
        status = super().run()
        log.info("custom worker: kept %d games, dropped %d shorter than %d moves, %.1f s in the network, by generation %s",
                 sum(self.by_generation.values()), self.dropped, self.min_moves, self.nn_seconds,
                 dict(sorted(self.by_generation.items())))
        return status


if __name__ == "__main__":
    sys.exit(main(ShortGameFilter))
