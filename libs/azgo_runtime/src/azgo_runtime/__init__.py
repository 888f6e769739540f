"""azgo_runtime: what the services share beyond the pure library, and nothing more (the service
images install it; the operator's tools are ``azgo_tools``).

Modules:
    client      BrokerClient (DEALER, Lazy Pirate, asynchronous mode), Subscriber, Backoff
    session     BrokerSession: every service's session with the broker (hello, heartbeats,
                silence, reconnects, request matching; pumped or blocking)
    service     the start of every service main: arguments, settings, logging, stop signals
    health      liveness for container health checks: a heartbeat file, `python -m azgo_runtime.health`
    curve       ZeroMQ CURVE: the key files a broker or a client loads (``make keys`` writes them)
    status      the broker's /status JSON over HTTP (the evaluator reads the generation from it)
    engines     engine specs (random, gnugo[:LEVEL], a model file, gtp:COMMAND) and their players
    gtp_player  a GTP engine subprocess as a match player
"""
