"""azgo_runtime: what the services share beyond the pure library.

Modules:
    client    BrokerClient (DEALER, Lazy Pirate, asynchronous mode), Subscriber, Backoff
    service   the start of every service main: arguments, settings, logging, stop signals
    status    `azgo status`: the worker table from the broker's /status
    launcher  `azgo run` / `make run`: broker, learner and self-play as local processes
"""
