"""azgo_runtime: what the services share beyond the pure library.

Modules:
    client    BrokerClient (DEALER, Lazy Pirate, asynchronous mode), Subscriber, Backoff
    service   the start of every service main: arguments, settings, logging, stop signals
    health    liveness for container health checks: a heartbeat file, `python -m azgo_runtime.health`
    keys      ZeroMQ CURVE key pairs for `make keys`: the broker's and one per worker
    status    `azgo status`: the worker table from the broker's /status
    launcher  `azgo run` / `make run`: broker, learner and self-play as local processes
    match     `azgo match` / `make match`: two engines, N games, the score with its interval
    engines   engine specs (random, gnugo[:LEVEL], a model file, gtp:COMMAND) and their players
    gtp_player  a GTP engine subprocess as a match player
    report    `azgo report` / `make report`: report.md and the plots (plots: matplotlib figures)
"""
