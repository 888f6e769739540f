# Self-play on remote hosts: docker contexts over SSH, one worker per GPU (included by the Makefile).
#
#   make doctor HOSTS=me@gpu1,me@gpu2          checks only: a table of what is wrong where, and the fix
#   make deploy HOSTS=me@gpu1,me@gpu2 [GPUS=all|0,1|none] [BROKER=10.0.0.5] [REGISTRY=reg:5000]
#   make deploy                                the hosts of distributed.workers in $(CONFIG)
#   make status                                the workers at the broker (make deploy WAIT=120 waits for Active)
#   make logs [WORKER=gpu1-gpu0] [FOLLOW=1]    the deployed workers' output
#   make restart WORKER=gpu1-gpu0              one worker (or WORKER=gpu1: all of that host's)
#   make undeploy [HOSTS=me@gpu2]              stop and remove them (default: every deployed host)
#
# Variables: HOSTS (user@host[:port],...), GPUS, BROKER (the broker's address as the hosts see
# it; default this machine's address on the route to each host), REGISTRY (push/pull instead
# of shipping over SSH), SSH_KEY (key for hosts without key_path), IMAGE / GPU_IMAGE (default
# azgo/selfplay:dev, azgo/selfplay-gpu:dev), WAIT (seconds deploy waits for Active), WORKER,
# FOLLOW, TAIL (log lines, 100), DEPLOY_ARGS (more options, see `azgo deploy --help`).
# Generated compose files, ssh settings and records: build/deploy/ ($AZGO_DEPLOY_DIR).

HOSTS ?=
GPUS ?=
BROKER ?=
REGISTRY ?=
SSH_KEY ?=
IMAGE ?=
GPU_IMAGE ?=
WAIT ?=
WORKER ?=
FOLLOW ?=
TAIL ?= 100
DEPLOY_ARGS ?=

DEPLOY_HOSTS = $(if $(HOSTS),--hosts='$(HOSTS)') $(if $(SSH_KEY),--ssh-key='$(SSH_KEY)')
DEPLOY_TARGETS = $(if $(GPUS),--gpus='$(GPUS)') $(if $(BROKER),--broker='$(BROKER)') \
	$(if $(IMAGE),--image '$(IMAGE)') $(if $(GPU_IMAGE),--gpu-image '$(GPU_IMAGE)')

.PHONY: deploy undeploy doctor restart logs

deploy: $(VENV_STAMP)
	@$(VENV)/bin/azgo deploy --config '$(CONFIG)' $(DEPLOY_HOSTS) $(DEPLOY_TARGETS) \
		$(if $(REGISTRY),--registry '$(REGISTRY)') $(if $(WAIT),--wait '$(WAIT)') $(DEPLOY_ARGS)

doctor: $(VENV_STAMP)
	@$(VENV)/bin/azgo doctor --config '$(CONFIG)' $(DEPLOY_HOSTS) $(DEPLOY_TARGETS) $(DEPLOY_ARGS)

undeploy: $(VENV_STAMP)
	@$(VENV)/bin/azgo undeploy --config '$(CONFIG)' $(DEPLOY_HOSTS) $(DEPLOY_ARGS)

restart: $(VENV_STAMP)
	@test -n '$(WORKER)' || { echo "usage: make restart WORKER=<worker id or host> (make status lists them)" >&2; exit 2; }
	@$(VENV)/bin/azgo restart --config '$(CONFIG)' '$(WORKER)' $(DEPLOY_ARGS)

logs: $(VENV_STAMP)
	@$(VENV)/bin/azgo logs --config '$(CONFIG)' --tail '$(TAIL)' $(if $(FOLLOW),--follow) $(if $(WORKER),'$(WORKER)') $(DEPLOY_ARGS)
