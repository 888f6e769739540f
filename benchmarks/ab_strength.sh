#!/usr/bin/env bash
# A/B of training configurations under the same wall time on the same machine, rated in one pool.
#
#   benchmarks/ab_strength.sh OUT MINUTES CONFIG ARM [ARM ...]
#   ARM = label[:VAR=VALUE[,VAR=VALUE...]]     (AZGO_* overrides of CONFIG for that arm)
#
#   benchmarks/ab_strength.sh build/ab 15 configs/7x7.yaml new \
#       noaux:AZGO_MODEL__AUX_HEADS=false,AZGO_MODEL__GLOBAL_POOLING=false gumbel:AZGO_SEARCH__ALGORITHM=gumbel
#
# One arm after another (never two at once: they would share the cores), each `azgo strength`
# (train MINUTES, then GAMES distinct games at VISITS against each of OPPONENTS, by default
# random,gnugo:1,gnugo:10) in OUT/<label>; then every pair of arms' last generations plays GAMES
# games, two matches at a time (each is one single-threaded process); then all the results in
# one Bradley-Terry pool (random = 0): OUT/pool.md. Load averages go in each strength.md:
# check them, a loaded machine's figures are not reference figures.
set -euo pipefail
out=$1 minutes=$2 config=$3
shift 3
games=${GAMES:-40} visits=${VISITS:-100} azgo=${AZGO:-.venv/bin/azgo}
opponents=${OPPONENTS:-random,gnugo:1,gnugo:10}
komi=$(AZGO_SILENT=1 "$azgo" config --config "$config" 2>/dev/null | awk '/^board:/{b=1} b&&/komi:/{print $2; exit}')
mkdir -p "$out"
labels=()
for arm in "$@"; do
  label=${arm%%:*}
  overrides=""
  [[ $arm == *:* ]] && overrides=${arm#*:}
  labels+=("$label")
  echo "== $label: ${overrides:-defaults} (load $(cut -d' ' -f1-3 /proc/loadavg))"
  (IFS=, ; [[ -n $overrides ]] && export $overrides; "$azgo" strength --config "$config" --minutes "$minutes" --out "$out/$label" \
     --games "$games" --visits "$visits" --opponents "$opponents")
done
model() { ls "$1"/data/*/broker/models/*.safetensors "$1"/data/broker/models/*.safetensors 2>/dev/null | sort | tail -1; }
specs=()
for ((i = 0; i < ${#labels[@]}; i++)); do
  a=${labels[i]}
  for opp in ${opponents//,/ }; do     # random -> matches/random as random; gnugo:1 -> matches/gnugo-1 as gnugo-l1
    name=${opp/:/-}
    [[ $opp == gnugo:* ]] && name=gnugo-l${opp#gnugo:}
    specs+=("$a:$name:$out/$a/matches/${opp/:/-}")
  done
  for ((j = i + 1; j < ${#labels[@]}; j++)); do
    b=${labels[j]}
    (( $(jobs -rp | wc -l) < 2 )) || wait -n
    echo "== $a vs $b"
    "$azgo" match "$(model "$out/$a"):$visits" "$(model "$out/$b"):$visits" --games "$games" --komi "$komi" \
      --out "$out/$a-vs-$b" > "$out/$a-vs-$b.log" 2>&1 &
    specs+=("$a:$b:$out/$a-vs-$b")
  done
done
wait
# the strength pages name the opponents by engine; the pool names our players by arm
"${PYTHON:-.venv/bin/python}" benchmarks/rate_matches.py "${specs[@]}" | tee "$out/pool.md"
