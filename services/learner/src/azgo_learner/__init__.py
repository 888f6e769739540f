"""azgo_learner: trains on the broker's game window, publishes generations, checkpoints.

Modules:
    loop        Learner: the service loop, top to bottom (start, pull, train, publish, wait)
    trainer     Trainer: network, optimiser, LR schedule, sampling RNG; checkpoint parts
    checkpoint  checkpoint files (safetensors + JSON metadata): write, read, newest, prune
    window      WindowFeed: the training window filled from the broker's game store
    ratio       SampleRatio: the samples-per-position governor
    report      Reporter: figures to the broker, metrics.jsonl and TensorBoard
"""
