# Evaluation: matches on demand and the run report (included by the Makefile).
#
#   make match A=gnugo B=random GAMES=20 SIZE=7     two engines, the score with its interval, SGF in data/matches/
#   make match A=data/broker/models/000012.safetensors:200 B=gnugo:3
#   make report                                     data/report/: report.md and the PNG plots
#   make strength CONFIG=configs/7x7.yaml MINUTES=60  train, then the last generation against random,
#                                                   GNU Go 1 and 10: build/strength/<config>-<time>/strength.md
#
# Engines (A, B): random, gnugo[:LEVEL], a model file PATH.safetensors[:VISITS], gtp:COMMAND LINE.
# make strength: MINUTES (60), STRENGTH_GAMES (40), STRENGTH_VISITS (100), OPPONENTS
# (random,gnugo:1,gnugo:10), STRENGTH_OUT (build/strength/<config>-<time>), SEED (0).
# Variables: GAMES (default 20), SIZE (default: the model's, else 9), VISITS (a model's visits
# when the spec has none, default 100), KOMI (default 7.5), MATCH_ARGS (more `azgo match`
# options: --out DIR, --seed S, --device cuda), DATA (the run's data dir for report, default data).

A ?= gnugo
B ?= random
GAMES ?= 20
SIZE ?=
VISITS ?=
KOMI ?=
MATCH_ARGS ?=
DATA ?= data

MINUTES ?= 60
STRENGTH_GAMES ?= 40
STRENGTH_VISITS ?= 100
OPPONENTS ?= random,gnugo:1,gnugo:10
SEED ?= 0
STRENGTH_OUT ?= build/strength/$(basename $(notdir $(CONFIG)))-$(shell date +%Y%m%d-%H%M%S)

.PHONY: match report strength

# GNU Go is set up (installed as root with apt-get) only when an engine names it.
match: $(VENV_STAMP) $(if $(findstring gnugo,$(A) $(B)),gnugo)
	@AZGO_GNUGO='$(GNUGO)' $(VENV)/bin/azgo match '$(A)' '$(B)' --games '$(GAMES)' \
		$(if $(SIZE),--size '$(SIZE)') $(if $(VISITS),--visits '$(VISITS)') $(if $(KOMI),--komi '$(KOMI)') $(MATCH_ARGS)

report: $(VENV_STAMP)
	@$(VENV)/bin/azgo report --data '$(DATA)'

strength: $(VENV_STAMP) gnugo
	@AZGO_GNUGO='$(GNUGO)' $(VENV)/bin/azgo strength --config '$(CONFIG)' --minutes '$(MINUTES)' --out '$(STRENGTH_OUT)' \
		--games '$(STRENGTH_GAMES)' --visits '$(STRENGTH_VISITS)' --opponents '$(OPPONENTS)' --seed '$(SEED)'
