"""One client's hostile batch never stalls the others (issue 13): a real broker process, real DEALERs.

A batch of 5,000 short legal games whose very last move is illegal fails the compiled check
and goes through the Python validator (about a second of replay); an object-amplification
blob (255 KB on the wire, 60 million empty maps once decompressed) used to cost the broker
gigabytes and tens of seconds. While either is being refused, another worker's heartbeats
and a model fetch are answered within ``PROMPT`` seconds each, and (for the slow batch) before
the refusal itself: the check runs beside the poll loop, not in it. The broker's peak
resident memory (VmHWM, read from /proc) grows by less than ``PEAK_GROWTH_MAX``.
"""

from __future__ import annotations

import time
from pathlib import Path

import lz4.frame
import pytest
from broker_helpers import batch, game, play_games, publish, tiny_settings
from procs import Service, get_text, http_url, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_runtime.client import BrokerClient

PROMPT = 0.5  # seconds: the most a heartbeat or a model fetch may wait while a hostile batch is checked
PEAK_GROWTH_MAX = 96 << 20
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stall")
    config = tiny_config(tmp, broker={"max_batch_games": 10_000})
    settings = tiny_settings(config)
    service = Service("broker", config, log_dir=tmp)
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the broker's /healthz")
        with BrokerClient(router_endpoint(config), timeout=TIMEOUT) as client:
            client.request(*publish(settings, 0))
            # the compiled check is ready (numba's cache) once a batch of self-play games is acked
            client.request(P.Hello(worker_id="warm", board_size=5))
            msg, blobs = batch("warm-1", "warm", play_games(settings, 2, "warm"))
            assert isinstance(client.request(msg, blobs).message, P.BatchAck)
        yield config, service
    finally:
        rc = service.stop()
        print(service.log()[-20_000:])
    assert rc == 0


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def slow_path_batch(worker: str) -> tuple[P.SubmitBatch, list[bytes]]:
    """5,000 legal six-move games (each resigned), then one whose second move is on an occupied point."""
    games = [game([i % 25, (i + 1) % 25, (i + 2) % 25, (i + 3) % 25, 25, (i + 5) % 25], worker_id=worker)
             for i in range(5000)]
    return batch("slow-1", worker, games + [game([0, 0], worker_id=worker)], compress=False)


def amplification_batch(worker: str) -> tuple[P.SubmitBatch, list[bytes]]:
    """255 KB of lz4 that would expand to 60 MB of 60 million empty maps (no declared content size)."""
    empties = b"\xdc\x27\x10" + b"\x80" * 10_000
    blob = lz4.frame.compress(b"\x82\xa1v\x01\xa1g\xdd" + (6000).to_bytes(4, "big") + empties * 6000, store_size=False)
    return P.SubmitBatch(batch_id="amp-1", worker_id=worker, games=1, positions=1, generations=[0]), [blob]


def served_meanwhile(config, hostile: tuple[P.SubmitBatch, list[bytes]], worker: str) -> tuple[P.Message, list]:
    """Send ``hostile`` as ``worker``, then heartbeats (and one model fetch) from another worker until the
    hostile batch's reply arrives. Returns (that reply, [(request kind, seconds to its reply, answered
    before the hostile reply)])."""
    with BrokerClient(router_endpoint(config), timeout=TIMEOUT) as a, \
            BrokerClient(router_endpoint(config), timeout=TIMEOUT) as b:
        a.request(P.Hello(worker_id=worker, board_size=5))
        b.request(P.Hello(worker_id="honest", board_size=5))
        a.send(*hostile)
        events, answer = [], None
        deadline = time.monotonic() + 60
        while answer is None and time.monotonic() < deadline:
            kind = "model" if len(events) == 1 else "heartbeat"
            request = P.GetModel() if kind == "model" else P.Heartbeat(worker_id="honest")
            start = time.monotonic()
            reply = b.request(request, timeout=TIMEOUT)
            waited = time.monotonic() - start
            assert isinstance(reply.message, P.ModelData if kind == "model" else P.HeartbeatAck)
            replies = a.poll(0)
            answer = replies[0].message if replies else None
            events.append((kind, waited, answer is None))
        assert answer is not None, "no reply to the hostile batch within 60 s"
        return answer, events


def test_an_amplification_blob_is_refused_in_bounded_time_and_memory(broker):  # first: its peak is measured
    config, service = broker
    msg, blobs = amplification_batch("amp-w")
    before = peak_rss(service.pid)
    start = time.monotonic()
    answer, events = served_meanwhile(config, (msg, blobs), "amp-w")
    seconds = time.monotonic() - start
    assert isinstance(answer, P.Error) and answer.code == P.ErrorCode.BAD_BATCH
    assert "decompresses to more than the limit" in answer.message
    assert seconds < 2.0 and max(waited for _, waited, _ in events) < PROMPT, (seconds, events)
    growth = peak_rss(service.pid) - before
    assert growth < PEAK_GROWTH_MAX, growth
    print(f"amplification: {len(blobs[0])} bytes refused in {seconds * 1000:.0f} ms, peak RSS +{growth >> 20} MiB")


def test_a_slow_path_batch_does_not_delay_another_workers_heartbeat(broker):
    config, service = broker
    msg, blobs = slow_path_batch("slow-w")
    before = peak_rss(service.pid)
    answer, events = served_meanwhile(config, (msg, blobs), "slow-w")
    assert isinstance(answer, P.Error) and answer.code == P.ErrorCode.BAD_BATCH
    assert "game 5000, move 2: illegal move A5: occupied" in answer.message
    answered_before = [e for e in events if e[2]]
    assert len(answered_before) >= 2, events  # the heartbeats (and the fetch) did not wait for the slow check
    assert max(waited for _, waited, _ in events) < PROMPT, events
    assert peak_rss(service.pid) - before < PEAK_GROWTH_MAX
    print(f"slow path: {len(blobs[0])} bytes refused; {len(answered_before)} requests answered meanwhile, "
          f"slowest {max(w for _, w, _ in events) * 1000:.0f} ms")


def test_validation_threads_check_batches_at_once_and_hand_them_back_in_order():
    """``broker.validation_threads`` = 2: the second batch is checked while the first one's check
    still runs (with one thread the first check would wait for it in vain), yet the verdicts
    reach the loop in submission order, the store's and each peer's order."""
    import threading

    import zmq

    from azgo_broker.checking import BatchChecker, CheckJob
    from azgo_broker.validate import BatchRules, check_batch

    settings = tiny_settings()
    rules = BatchRules(settings.board.size, settings.board.komi, 100, 1 << 20)
    records = play_games(settings, 2, "w")
    second_checked = threading.Event()

    def check(msg, blob, rules, published):
        if msg.batch_id == "first" and not second_checked.wait(TIMEOUT):
            raise AssertionError("the second batch was not checked while the first one was")
        try:
            check_batch(msg, blob, rules, published)
        finally:
            if msg.batch_id == "second":
                second_checked.set()

    context = zmq.Context()
    checker = BatchChecker(context, rules, {0}, threads=2, check=check)
    try:
        assert len(checker.threads) == 2
        good = batch("first", "w", records)
        bad = batch("second", "w", records, games=3)  # the header lies about the number of games
        for msg, blobs in (good, bad):
            checker.submit(CheckJob(b"peer", msg, blobs[0]))
        done = []
        deadline = time.monotonic() + TIMEOUT
        while len(done) < 2 and time.monotonic() < deadline:
            checker.wake.poll(1000)
            done += checker.done()
        assert [job.msg.batch_id for job in done] == ["first", "second"]
        assert done[0].error is None and "header says 3 games" in done[1].error.reason
        assert checker.backlog_bytes == 0
    finally:
        checker.close()
        context.term()
    with pytest.raises(ValueError, match="at least one thread"):
        BatchChecker(zmq.Context.instance(), rules, {0}, threads=0)
