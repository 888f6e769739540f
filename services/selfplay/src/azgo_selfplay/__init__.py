"""azgo_selfplay: the self-play worker (``python -m azgo_selfplay --config FILE``).

Modules:
    worker    SelfPlayWorker: the play loop, model adoption, the hooks custom workers override
    link      BrokerLink: hello, heartbeats, model fetches, batch delivery, reconnects
    outbox    batches on disk until the broker acks them
    models    device choice and the checks a fetched model passes before it plays
    rates     games/s, positions/s, NN evals/s over a sliding window
    identity  the worker id and the lock on its folder
"""

from .worker import SelfPlayWorker

__all__ = ["SelfPlayWorker", "main"]


def main(worker_cls: type[SelfPlayWorker] = SelfPlayWorker, argv: list[str] | None = None) -> int:
    """The worker's command line (``--config``, ``--worker-id``, ``--games``, ``--seed``) running ``worker_cls``."""
    from .__main__ import main as _main  # imported here so ``python -m azgo_selfplay`` loads __main__ once

    return _main(worker_cls, argv)
