"""Hostile input at the broker: a real broker process, real DEALER sockets, a seeded fuzz of bad requests.

``AZGO_FUZZ_MESSAGES`` requests (10,000 by default; ``make test-faults`` sends 50,000) are
drawn by ``fuzz_cases.Fuzz`` from a seeded generator: random bytes, truncated frames, wrong
protocol versions, wrong types, huge declared sizes, oversize blobs, mutations of a valid
batch, illegal moves, wrong board sizes, unknown generations, replayed ids of the batch
stored at the start. The seed is printed; ``AZGO_FUZZ_SEED=<seed>`` replays a run. They are
pipelined over a few DEALERs with a bounded window; the broker answers each peer's requests
in order, so the n-th reply on a socket belongs to its n-th request.

What must hold: every request gets exactly one reply (a last request on each socket is
answered next: nothing extra was queued), an ``Error`` whose code and message name the
reason (a replayed id gets a duplicate ack, a hello a Welcome); the refusals are counted per
code in ``azgo_batches_rejected_total{reason}`` and in /status "rejected"; nothing is stored;
the broker is alive, still serves, its RSS stays within ``RSS_GROWTH_MAX`` of its RSS after a
warm-up, and its log grows by a bounded number of lines, not one per bad request.

A frame above the ROUTER's ``maxmsgsize`` never reaches the broker: libzmq drops that
peer's connection (the DEALER reconnects; that message is gone, unanswered). The broker goes
on serving everyone else (``test_oversize_frame_drops_only_that_connection``).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq
from broker_helpers import batch, play_games, publish, tiny_settings
from fuzz_cases import CATEGORIES, Base, Case, Fuzz
from procs import Service, get_json, get_text, http_url, metric_samples, router_endpoint, tiny_config, wait_for
from zmq.utils.monitor import recv_monitor_message

from azgo_broker.ratelog import FIRST_PER_KIND, WINDOW_SECONDS, RateLimitedLog
from azgo_broker.server import FRAME_SLACK, HELLO_LINES
from azgo_broker.workers import MAX_ERROR, MAX_FIELD, MAX_SYNCED, MAX_WORKERS, WorkerRegistry
from azgo_core import protocol as P
from azgo_runtime.client import BrokerClient

FUZZ_MESSAGES = int(os.environ.get("AZGO_FUZZ_MESSAGES") or 10_000)
SEED = int(os.environ.get("AZGO_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
WARMUP_MESSAGES = 1_000
SOCKETS = 4
WINDOW = 16  # requests in flight per socket
STALL = 60.0  # seconds without a single reply before the run fails
MAX_BATCH_BYTES = 256 << 10  # small, so oversize blobs and frames cost little to send
RSS_GROWTH_MAX = 64 << 20
WORKER = "fuzz-w"
SENTINEL_RID = 2**62 + 7
TIMEOUT = 30.0
E = P.ErrorCode


@dataclass
class Running:
    config: Path
    service: Service
    base: Base

    def url(self, route: str) -> str:
        return http_url(self.config, route)

    def client(self) -> BrokerClient:
        return BrokerClient(router_endpoint(self.config), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker with generation 0 published and one valid batch stored (the one the fuzz replays)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    config = tiny_config(tmp, broker={"max_batch_bytes": MAX_BATCH_BYTES})
    settings = tiny_settings(config)
    service = Service("broker", config, log_dir=tmp)
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the broker's /healthz")
        client = BrokerClient(router_endpoint(config), timeout=TIMEOUT)
        client.request(*publish(settings, 0))
        client.request(P.Hello(worker_id=WORKER, board_size=settings.board.size))
        records = play_games(settings, 2, WORKER)
        msg, blobs = batch("fuzz-stored", WORKER, records)
        ack = client.request(msg, blobs).message
        assert isinstance(ack, P.BatchAck) and not ack.duplicate
        client.close()
        yield Running(config, service, Base(WORKER, records, msg, blobs[0], ack.seq, MAX_BATCH_BYTES))
    finally:
        rc = service.stop()
        print(service.log()[-20_000:])  # shown when a test failed
    assert rc == 0


# --- measuring the broker ----------------------------------------------------------------


def metrics(running: Running) -> dict[str, float]:
    return metric_samples(running.url("/metrics"))


def rejected(m: dict[str, float]) -> dict[str, float]:
    """azgo_batches_rejected_total by reason, every ErrorCode present."""
    return {code.value: m.get(f'azgo_batches_rejected_total{{reason="{code.value}"}}', 0.0) for code in E}


def settled_totals(running: Running) -> dict:
    """/status totals once the snapshot has caught up with /metrics (it is rebuilt every 0.2 s)."""
    def agree():
        total = sum(rejected(metrics(running)).values())
        totals = get_json(running.url("/status"))["totals"]
        return totals if totals["rejected"] == total else None

    return wait_for(agree, 10, "/status rejected to agree with azgo_batches_rejected_total")


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


# --- sending -------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    replies: int = 0
    codes: collections.Counter = field(default_factory=collections.Counter)
    """Error replies received, by code."""
    categories: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)


def check(case: Case, frames: list[bytes], tally: Tally) -> None:
    """Record the reply to ``case``; a reply other than the one it must get goes to ``tally.failures``."""
    tally.replies += 1
    tally.categories[case.category] += 1
    try:
        reply = P.decode(frames[0], blobs=len(frames) - 1)
    except P.ProtocolError as e:
        tally.failures.append(f"{case.category}: undecodable reply {frames[0][:60]!r}: {e}")
        return
    if isinstance(reply, P.Error):
        tally.codes[reply.code.value] += 1
    wrong = []
    if case.reply == "error":
        if not isinstance(reply, P.Error):
            wrong.append(f"a {reply.type} instead of an error")
        elif reply.code not in case.codes or case.words not in reply.message:
            wrong.append(f"error {reply.code.value}: {reply.message[:200]!r}, expected {sorted(case.codes)} "
                         f"with {case.words!r}")
    elif case.reply == "batch_ack":
        if not (isinstance(reply, P.BatchAck) and reply.duplicate and reply.seq == case.duplicate_of):
            wrong.append(f"{reply!r}, expected a duplicate ack of seq {case.duplicate_of}")
    elif case.reply != reply.type:
        wrong.append(f"{reply!r}, expected a {case.reply}")
    if case.rid is not None and reply.rid != case.rid:
        wrong.append(f"rid {reply.rid}, expected {case.rid}")
    if wrong:
        tally.failures.append(f"{case.category} (frames {[f[:40] for f in case.frames][:3]}): {'; '.join(wrong)}")


def pump(running: Running, cases, tally: Tally, sockets: int = SOCKETS, window: int = WINDOW) -> None:
    """Send every case, at most ``window`` in flight per DEALER, and check each reply as it comes.

    Each socket ends with a GetModel whose reply must come next after the others: a reply too
    many would show up in its place.
    """
    context = zmq.Context.instance()
    socks = [context.socket(zmq.DEALER) for _ in range(sockets)]
    poller = zmq.Poller()
    for s in socks:
        s.linger = 0
        s.connect(router_endpoint(running.config))
        poller.register(s, zmq.POLLIN)
    pending = {s: collections.deque() for s in socks}
    cases = iter(cases)
    queues = {s: [] for s in socks}  # the sentinel, sent once the cases run out
    sentinel = Case("sentinel", [P.encode(P.GetModel(rid=SENTINEL_RID))], rid=SENTINEL_RID, reply="model_data")
    exhausted, last_reply = False, time.monotonic()
    try:
        while True:
            for s in socks:
                while len(pending[s]) < window:
                    case = queues[s].pop() if queues[s] else (None if exhausted else next(cases, None))
                    if case is None:
                        if not exhausted:
                            exhausted = True
                            for q in queues.values():
                                q.append(sentinel)
                            continue
                        break
                    s.send_multipart(case.frames)
                    tally.sent += 1
                    pending[s].append(case)
            if exhausted and not any(pending.values()) and not any(queues.values()):
                return
            for s, _ in poller.poll(1000):
                while True:
                    try:
                        frames = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if not pending[s]:
                        tally.failures.append(f"a reply with nothing pending: {frames[0][:80]!r}")
                        continue
                    check(pending[s].popleft(), frames, tally)
                    last_reply = time.monotonic()
            if time.monotonic() - last_reply > STALL:
                heads = [q[0].category for q in pending.values() if q]
                raise AssertionError(f"no reply for {STALL:g} s (seed {SEED}); waiting on {heads}; broker alive: "
                                     f"{running.service.alive()}")
    finally:
        for s in socks:
            s.close()


def fuzz_cases(running: Running, seed: int, n: int):
    fuzz = Fuzz(random.Random(seed), running.base)
    return (fuzz.next_case() for _ in range(n))


# --- the tests -----------------------------------------------------------------------------


def test_fuzz_every_bad_request_is_refused_by_name_counted_and_nothing_is_stored(broker):
    print(f"\nbroker fuzz: {FUZZ_MESSAGES} messages, seed {SEED} (replay: AZGO_FUZZ_SEED={SEED})")
    warm = Tally()
    pump(broker, fuzz_cases(broker, SEED ^ 0x5EED, WARMUP_MESSAGES), warm)
    assert not warm.failures, f"seed {SEED}, warm-up: {warm.failures[:20]}"
    before_totals = settled_totals(broker)
    before = rejected(metrics(broker))
    rss_warm = rss(broker.service.pid)
    log_lines = len(broker.service.log().splitlines())

    tally = Tally()
    started = time.monotonic()
    pump(broker, fuzz_cases(broker, SEED, FUZZ_MESSAGES), tally)
    elapsed = time.monotonic() - started
    rss_after = rss(broker.service.pid)
    print(f"broker fuzz: {FUZZ_MESSAGES} messages in {elapsed:.1f} s ({FUZZ_MESSAGES / elapsed:.0f}/s); "
          f"RSS {rss_warm / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; errors {dict(tally.codes)}")

    assert not tally.failures, f"seed {SEED}: {len(tally.failures)} wrong replies, first: " + "\n".join(tally.failures[:20])
    assert tally.sent == tally.replies == FUZZ_MESSAGES + SOCKETS  # every request answered, sentinels included
    assert broker.service.alive()
    if FUZZ_MESSAGES >= 5_000:  # every category drawn (the rarest has weight 0.5 in ~120)
        assert set(tally.categories) == {*CATEGORIES, "sentinel"}, sorted(set(CATEGORIES) - set(tally.categories))
    assert tally.codes[E.INTERNAL.value] == 0  # a handler exception would be a bug the fuzz found

    after_totals = settled_totals(broker)
    after = rejected(metrics(broker))
    assert {c: after[c] - before[c] for c in after} == {c.value: tally.codes[c.value] for c in E}
    assert after_totals["rejected"] - before_totals["rejected"] == sum(tally.codes.values())
    for key in ("batches", "games", "positions", "store_bytes"):
        assert after_totals[key] == before_totals[key], key  # nothing stored
    assert after_totals["duplicates"] - before_totals["duplicates"] == tally.categories["replayed"]

    assert rss_after - rss_warm < RSS_GROWTH_MAX, f"RSS grew {(rss_after - rss_warm) / 2**20:.1f} MiB"
    lines = broker.service.log().splitlines()[log_lines:]
    windows = elapsed / WINDOW_SECONDS + 2  # rate-limit windows the run touched
    assert len(lines) < windows * (len(E) * (FIRST_PER_KIND + 1) + 3 * HELLO_LINES + 20), len(lines)
    for code in E:
        refused = sum(f": {code.value}: " in line and "refused" in line for line in lines)
        assert refused <= windows * FIRST_PER_KIND, (code, refused)

    # still serving: a hello and a good batch, stored and acked
    client = broker.client()
    try:
        assert isinstance(client.request(P.Hello(worker_id=WORKER, board_size=5)).message, P.Welcome)
        msg, blobs = batch(f"fuzz-after-{SEED}", WORKER, broker.base.records)
        ack = client.request(msg, blobs).message
        assert isinstance(ack, P.BatchAck) and not ack.duplicate
    finally:
        client.close()
    wait_for(lambda: get_json(broker.url("/status"))["totals"]["batches"] == after_totals["batches"] + 1, 10,
             "the good batch in /status")


def monitor_events(monitor: zmq.Socket, want: int, timeout: float) -> dict:
    """The next socket-monitor event of kind ``want`` (zmq.EVENT_*), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while monitor.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        event = recv_monitor_message(monitor)
        if event["event"] == want:
            return event
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no monitor event {want} within {timeout:g} s")


def test_oversize_frame_drops_only_that_connection(broker):
    """A frame above maxmsgsize: libzmq closes that connection unanswered; the broker serves everyone on."""
    maxmsgsize = MAX_BATCH_BYTES + FRAME_SLACK
    context = zmq.Context.instance()
    bystander = broker.client()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    try:
        sock.connect(router_endpoint(broker.config))
        monitor_events(monitor, zmq.EVENT_CONNECTED, TIMEOUT)
        bystander.request(P.Hello(worker_id="bystander", board_size=5))
        for rid in (1, 2):  # one frame just above the limit, then a far bigger one
            sock.send_multipart([P.encode(P.GetModel(rid=rid)), b"\0" * (maxmsgsize + 1 + (rid - 1) * (8 << 20))])
            monitor_events(monitor, zmq.EVENT_DISCONNECTED, TIMEOUT)
            assert isinstance(bystander.request(P.Heartbeat(worker_id="bystander")).message, P.HeartbeatAck)
            monitor_events(monitor, zmq.EVENT_CONNECTED, TIMEOUT)  # the DEALER reconnects by itself
        sock.send_multipart([P.encode(P.GetModel(rid=3))])
        assert sock.poll(int(TIMEOUT * 1000)), "no reply after the reconnect"
        reply = P.decode(sock.recv_multipart()[0])
        assert isinstance(reply, P.ModelData) and reply.rid == 3  # the oversize requests were never answered
        frames = [P.encode(P.GetModel(rid=4)), b"\0" * (maxmsgsize - 64)]  # just under the limit: answered
        sock.send_multipart(frames)
        assert sock.poll(int(TIMEOUT * 1000)), "no reply to a frame under maxmsgsize"
        reply = P.decode(sock.recv_multipart()[0])
        assert isinstance(reply, P.Error) and reply.rid == 4 and "expected 0 blob frame(s), got 1" in reply.message
        assert broker.service.alive()
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()
        bystander.close()


def test_hellos_from_made_up_ids_keep_the_worker_table_bounded(broker):
    """More distinct worker ids than MAX_WORKERS: the least recently seen are forgotten, memory stays flat."""
    n = MAX_WORKERS + 1000
    ids = [f"flood-{i}" for i in range(n)]
    rss_before = rss(broker.service.pid)
    tally = Tally()
    cases = (Case("hello", [P.encode(P.Hello(rid=i + 1, worker_id=w, board_size=5, host=f"h{i}"))], rid=i + 1,
                  reply="welcome") for i, w in enumerate(ids))
    pump(broker, cases, tally, sockets=1, window=64)  # one socket: the hellos arrive in order
    assert not tally.failures, tally.failures[:10]
    status = wait_for(lambda: (s := get_json(broker.url("/status"))) and
                      any(w["worker_id"] == ids[-1] for w in s["workers"]) and s, 10, "the last hello in /status")
    present = {w["worker_id"] for w in status["workers"]}
    assert len(present) == MAX_WORKERS  # every table entry is a self-play worker here
    assert set(ids[-MAX_WORKERS:]) == present and ids[0] not in present  # the oldest went first
    rss_after = rss(broker.service.pid)
    print(f"hello flood: {n} ids, {len(present)} kept; RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert rss_after - rss_before < RSS_GROWTH_MAX
    client = broker.client()
    try:
        with pytest.raises(Exception, match="has not said hello"):  # forgotten: told to say hello again
            client.request(P.Heartbeat(worker_id=ids[0]))
        assert isinstance(client.request(P.Hello(worker_id=ids[0], board_size=5)).message, P.Welcome)
        assert isinstance(client.request(P.Heartbeat(worker_id=ids[0])).message, P.HeartbeatAck)
    finally:
        client.close()


def test_the_worker_table_forgets_the_least_recently_seen_when_full():
    reg = WorkerRegistry(liveness_seconds=1.0, max_workers=3)
    for i, w in enumerate("abc"):
        assert reg.hello(P.Hello(worker_id=w, board_size=5), now=float(i), wall=0.0)[1] is None
    reg.touch("a", now=3.0)  # a is the most recent now: b is the least
    worker, evicted = reg.hello(P.Hello(worker_id="d", board_size=5), now=4.0, wall=0.0)
    assert worker.worker_id == "d" and evicted.worker_id == "b" and reg.get("b") is None
    assert reg.hello(P.Hello(worker_id="c", board_size=5), now=5.0, wall=0.0)[1] is None  # known: nobody leaves
    assert list(reg.workers) == ["a", "d", "c"] and len(reg.workers) == 3
    assert [w.worker_id for w in reg.purge(now=5.5)] == ["a", "d"]  # silent > 1 s; c (seen at 5.0) is not
    assert reg.hello(P.Hello(worker_id="e", board_size=5), now=7.0, wall=0.0)[1].worker_id == "a"  # Offline, oldest
    reg.hello(P.Hello(worker_id="e", board_size=5, host="h" * 4096, gpu="g" * 4096), now=7.0, wall=0.0)
    for g in range(10_000):  # made-up generations, one heartbeat each: each entry stays bounded too
        reg.heartbeat(P.Heartbeat(worker_id="e", generation=g, error="x" * 4096), now=8.0)
    e = reg.get("e")
    assert len(e.synced) == MAX_SYNCED and max(e.synced) == 9_999
    assert (len(e.host), len(e.gpu), len(e.error)) == (MAX_FIELD, MAX_FIELD, MAX_ERROR)


def test_the_rate_limited_log_writes_the_first_lines_then_counts(caplog):
    clock = [0.0]
    limited = RateLimitedLog(logging.getLogger("azgo.test.ratelog"), first=3, interval=10.0, clock=lambda: clock[0])
    caplog.set_level(logging.INFO, logger="azgo.test.ratelog")
    written = [limited.warning("refused bad_batch", "bad %d", i) for i in range(1000)]
    written += [limited.info("hello", "hello %d", i, limit=5) for i in range(7)]
    assert written.count(True) == 3 + 5
    assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 1", "bad 2"] + [f"hello {i}" for i in range(5)]
    caplog.clear()
    clock[0] = 9.0
    limited.flush()
    assert caplog.records == []  # the window is not over
    clock[0] = 10.5
    assert limited.warning("refused bad_batch", "bad again")  # a new window: written in full, after the summary
    assert [r.getMessage() for r in caplog.records] == ["hello: 2 more in the last 10 s (not shown)",
                                                        "refused bad_batch: 997 more in the last 10 s (not shown)",
                                                        "bad again"]
