"""A crafted pickle in place of a model file: refused everywhere, never executed (real processes).

The pickle's payload would create a marker file if anything unpickled it. It reaches the
broker's disk with a matching sha256 in the registry's record (as if the data dir were
tampered with), so the sha256 check passes and the format check must be what stops it: the
broker's publish refuses it, the worker that fetches it refuses it, and the marker never
appears.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle

from broker_helpers import model_blob, tiny_settings
from procs import Service, get_json, get_text, http_url, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_runtime.client import BrokerClient, RemoteError


class _Exploit:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_as_a_model_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Exploit(str(marker)), protocol=4)
    config = tiny_config(tmp_path, distributed={"heartbeat_interval": 0.5})
    settings = tiny_settings(config)
    broker = Service("broker", config, log_dir=tmp_path)
    worker = None
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the broker's /healthz")
        with BrokerClient(router_endpoint(config), timeout=10) as client:
            # 1. published as a model: refused by its format, before anything is stored
            try:
                client.request(P.PublishModel(generation=0, sha256=hashlib.sha256(evil).hexdigest()), [evil])
                raise AssertionError("the broker accepted a pickle as a model")
            except RemoteError as e:
                assert e.code == P.ErrorCode.BAD_MODEL and "pickle" in e.message, e.message
            assert get_json(http_url(config, "/status"))["model"] is None
            blob, sha = model_blob(settings, 0)
            client.request(P.PublishModel(generation=0, sha256=sha), [blob])
        broker.stop()
        # 2. planted on the broker's disk with a matching digest in the registry's record
        models = tmp_path / "broker" / "models"
        (models / "000000.safetensors").write_bytes(evil)
        record = json.loads((models / "000000.json").read_text())
        record["model"].update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))
        (models / "000000.json").write_text(json.dumps(record))
        broker = Service("broker", config, log_dir=tmp_path, tag="broker-2")
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the restarted broker's /healthz")
        worker = Service("selfplay", config, "--worker-id", "victim", log_dir=tmp_path)
        # the worker fetches it, checks the digest (it matches), then refuses the format, and keeps trying
        wait_for(lambda: worker.log().count("model 000000 refused, not played") >= 1, 90, "the worker's refusal")
        assert "pickle" in worker.log()
        assert worker.alive()
        status = get_json(http_url(config, "/status"))
        assert status["totals"]["games"] == 0  # not one game played with it
        assert not marker.exists()
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    assert not marker.exists()
