#!/bin/sh
# The `deps` stage of docker/Dockerfile: a virtual environment in /opt/venv with the
# third-party requirements of every azgo package (docker/requirements.py reads them from the
# pyprojects copied under /build), and azgo's sources on its path.
#
# From the wheelhouse in /wheels when it holds wheels (--no-index: nothing is fetched);
# else from the index, torch first from TORCH_INDEX_URL (the CPU or a CUDA build: PyPI's
# default Linux torch is the CUDA one, gigabytes).
set -eu

python3 -m venv /opt/venv
PIP="/opt/venv/bin/pip --no-cache-dir --disable-pip-version-check -q"
python3 /build/docker/requirements.py /build >/build/requirements.txt

if ls /wheels/*.whl >/dev/null 2>&1; then
    echo "installing $(wc -l </build/requirements.txt) requirements from the wheelhouse"
    $PIP install --no-index --find-links /wheels -r /build/requirements.txt
else
    torch=$(grep '^torch' /build/requirements.txt || true)
    if [ -n "$torch" ] && [ -n "${TORCH_INDEX_URL:-}" ]; then
        echo "installing $torch from $TORCH_INDEX_URL"
        $PIP install --index-url "$TORCH_INDEX_URL" "$torch"
    fi
    echo "installing $(wc -l </build/requirements.txt) requirements from the index"
    $PIP install -r /build/requirements.txt
fi

# What only C++ extension builds and torch's own C++ tests use (headers, test binaries):
# about 200 MB of the image, and no compiler is there to use the headers anyway.
torch_dir=$(/opt/venv/bin/python -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")')
if [ -n "$torch_dir" ]; then
    rm -rf "$torch_dir/include" "$torch_dir/test"
    if [ -d "$torch_dir/bin" ]; then
        find "$torch_dir/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} +
    fi
fi

# The sources are copied to /app by later stages (code changes rebuild only those layers);
# a .pth file puts them on the path, folders that an image does not have are skipped.
purelib=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
printf '%s\n' /app/libs/azgo_core/src /app/libs/azgo_runtime/src \
    /app/services/broker/src /app/services/learner/src /app/services/selfplay/src /app/services/evaluator/src >"$purelib/azgo.pth"
# No `azgo` command here: it is the operator's (azgo_tools, with rich and matplotlib), run on
# the host: `make status` reads the broker's published /status.
