# Containers (included by the Makefile): images, CURVE keys, the compose system.
#
#   make docker-setup     Docker's engine, compose, a local base image and a wheelhouse, for
#                         machines without a registry (root, Debian; deploy/ci-docker.sh)
#   make images           azgo/broker, azgo/learner, azgo/selfplay (CPU), azgo/evaluator :$(AZGO_IMAGE_TAG)
#   make images-gpu       azgo/selfplay-gpu (CUDA runtime base, CUDA torch)
#   make keys             CURVE key pairs in keys/: the broker's, learner, selfplay, one per
#                         distributed.workers host of $(CONFIG), and KEY_NAMES="a b"; existing ones are kept
#   make compose-up       keys + images, then `docker compose up -d --scale selfplay=$(SELFPLAY)`
#   make compose-down     `docker compose down` (volumes kept: `docker compose down -v` deletes them)
#   make compose-logs     follow the services' logs
#   make test-containers  the container tests alone (they skip without an engine, fail with CI=true)
#
# Variables: AZGO_IMAGE_TAG (dev), SELFPLAY (1), KEY_NAMES, COMPOSE (docker compose), and the
# build arguments AZGO_BASE_IMAGE / AZGO_WHEELHOUSE, which build/docker.env (written by
# docker-setup) sets to the local base image and wheelhouse.

-include build/docker.env
AZGO_IMAGE_TAG ?= dev
SELFPLAY ?= 1
KEY_NAMES ?=
COMPOSE ?= docker compose
export AZGO_IMAGE_TAG AZGO_BASE_IMAGE AZGO_WHEELHOUSE

.PHONY: docker-setup images images-gpu keys compose-up compose-down compose-logs test-containers

docker-setup:
	bash deploy/ci-docker.sh

# docker/build.sh builds one image after another (they share every layer up to their own
# sources). A wheelhouse is refreshed first: the pyprojects may have gained a dependency.
images:
	@if [ -n "$(AZGO_WHEELHOUSE)" ]; then bash deploy/ci-docker.sh wheelhouse; fi
	bash docker/build.sh broker learner selfplay evaluator

images-gpu:
	bash docker/build.sh selfplay-gpu

keys: $(VENV_STAMP)
	$(PY) -m azgo_tools.keys --dir keys --config '$(CONFIG)' $(KEY_NAMES)

compose-up: keys images
	$(COMPOSE) up -d --no-build --scale selfplay=$(SELFPLAY)
	@echo "broker: http://127.0.0.1:$${AZGO_HTTP_PORT:-9100}/status   (make status, make compose-logs, make compose-down)"

compose-down:
	$(COMPOSE) down

compose-logs:
	$(COMPOSE) logs -f

test-containers: $(VENV_STAMP)
	$(PY) -m pytest tests/test_containers.py
