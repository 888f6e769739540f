#!/usr/bin/env bash
# Build azgo's images from docker/Dockerfile, one after another: they share every layer up to
# their own sources, so the first build makes those layers and the others reuse them (built
# in parallel, as `docker compose build` does, each would redo them).
#
#   docker/build.sh [broker] [learner] [selfplay] [evaluator] [selfplay-gpu] [prometheus]
#                                                  (default: broker learner selfplay evaluator)
#
# Images: $AZGO_IMAGE_PREFIX/<name>:$AZGO_IMAGE_TAG (azgo/broker:dev ...), the names
# compose.yaml runs. Build arguments from the environment when set: AZGO_BASE_IMAGE,
# AZGO_WHEELHOUSE, AZGO_GPU_BASE_IMAGE, AZGO_GPU_TORCH_INDEX_URL (see docker/Dockerfile).
# Each build's output goes to build/images/<name>.log; its last lines are printed when it fails.
set -euo pipefail

cd "$(dirname "$0")/.."
prefix=${AZGO_IMAGE_PREFIX:-azgo}
tag=${AZGO_IMAGE_TAG:-dev}
args=()
[ -n "${AZGO_BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$AZGO_BASE_IMAGE")
[ -n "${AZGO_WHEELHOUSE:-}" ] && args+=(--build-arg "WHEELHOUSE=$AZGO_WHEELHOUSE")
[ -n "${AZGO_GPU_BASE_IMAGE:-}" ] && args+=(--build-arg "GPU_BASE_IMAGE=$AZGO_GPU_BASE_IMAGE")
[ -n "${AZGO_GPU_TORCH_INDEX_URL:-}" ] && args+=(--build-arg "GPU_TORCH_INDEX_URL=$AZGO_GPU_TORCH_INDEX_URL")
# Without the buildx plugin a recent docker client refuses BuildKit builds: use the classic builder.
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

[ $# -gt 0 ] || set -- broker learner selfplay evaluator
mkdir -p build/images
for name in "$@"; do
    case "$name" in
        broker | learner | evaluator | selfplay-gpu | prometheus) target=$name ;;
        selfplay) target=selfplay-cpu ;;
        *) echo "error: unknown image '$name' (broker, learner, selfplay, evaluator, selfplay-gpu, prometheus)" >&2; exit 2 ;;
    esac
    start=$SECONDS
    log=build/images/$name.log
    if ! docker build -f docker/Dockerfile --target "$target" -t "$prefix/$name:$tag" "${args[@]}" . >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "error: building $prefix/$name:$tag failed (the whole log: $log)" >&2
        exit 1
    fi
    printf '==> %s:%s  %ss  %s\n' "$prefix/$name" "$tag" $((SECONDS - start)) \
        "$(docker image inspect --format '{{.Size}}' "$prefix/$name:$tag" | awk '{printf "%.2f GB", $1 / 1e9}')"
done
