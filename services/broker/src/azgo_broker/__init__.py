"""azgo_broker: the ZeroMQ broker between the learner and the self-play workers.

Modules:
    server    the poll loop and one handler per request type (``Broker``)
    store     the durable game store: append-only segments, group commit, window queries
    models    the model registry: published generations on disk, the current one
    workers   the worker registry: hello, heartbeats, liveness (Offline)
    validate  checks a game batch must pass before it is stored
    metrics   Prometheus metrics and the HTTP endpoint (/metrics, /status, /healthz)
    status    the /status document and the status.txt table
"""
