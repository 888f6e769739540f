"""Self-play on remote hosts: ``azgo deploy | undeploy | doctor | restart | logs`` (``make deploy`` ...).

Each host is reached through a docker context over SSH (``azgo-<name>``) and runs one compose
project (``azgo-selfplay-<name>``) with one self-play worker per GPU, each with its own worker
id and key, pointed at the broker. Modules, one idea each:

    hosts     host specs (user@host[:port]), GPU requests, the names derived from a host
    ssh       azgo's ssh configuration and wrapper, host keys, ssh errors explained
    engine    docker contexts, commands through them, images shipped (save | gzip | load, or a registry)
    checks    the doctor's rows: what is wrong on which host, and the fix
    project   the compose project of a host and the deploy record kept for it
    cli       the commands' options (argparse only)
    commands  deploy and doctor
    manage    undeploy, restart, logs

Everything a run writes lives under the state directory (``build/deploy``, ``$AZGO_DEPLOY_DIR``):
``ssh/`` (config, wrapper, known_hosts), ``images/`` (an archive while it ships) and one folder
per host with its ``compose.yaml`` and ``deploy.json``.
"""
