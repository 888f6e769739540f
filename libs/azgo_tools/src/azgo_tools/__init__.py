"""azgo_tools: the operator's side, run on the machine that drives a training run.

Not installed in the service images (they hold azgo_core and azgo_runtime only), so what is
here may need rich and matplotlib.

Modules:
    cli       the ``azgo`` command: one subcommand per tool, heavy modules imported when it runs
    launcher  `azgo run` / `make run`: broker, learner and self-play as local processes
    cpu       the CPU split between those processes for the progress line
    status    `azgo status` / `make status`: the worker table (rich) from the broker's /status
    keys      ZeroMQ CURVE key pairs for `make keys`: the broker's and one per worker
    match     `azgo match` / `make match`: two engines, N games, the score with its interval
    report    `azgo report` / `make report`: report.md and the plots (plots: matplotlib figures)
    strength  `azgo strength` / `make strength`: train for a wall time, then rate the last generation
    deploy    `azgo deploy | undeploy | doctor | restart | logs`: self-play on remote hosts
"""
