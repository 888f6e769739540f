"""make bench-broker: the broker under load, as its own process, with fsync and group commit on.

Starts the real broker (``python -m azgo_broker --config F``: a temp data dir, free ports,
``broker.fsync`` on), publishes generation 0, then drives it with ``--workers`` simulated
self-play workers (a DEALER each, its own worker id, hello first, heartbeats every second)
sending ``--games``-game batches, while a learner-like reader pulls ``GetSamples`` at the
same time. Workers live in ``--generators`` load processes and the reader in another, so the
broker's CPU (from /proc/PID/stat) is its own.

The batches are real self-play games: a pool of ``--pool`` games on the ``--board`` board,
played once with the uniform evaluator and the default search settings and cached under
build/bench/, re-labelled per worker (the broker checks that a batch's games were played by
its submitter) and sent with a fresh batch id each time, so every batch is validated in full
(decode, provenance, legality replay of every move), stored and fsynced.

Two phases, each after ``--warmup`` seconds that are not counted:

  rate       ``--seconds`` at an offered ``--rate`` batches/s in all (open loop: each worker
             sends on its own schedule, at most ``--window`` unacknowledged like a real
             worker's link); the top-level figures and the targets come from this phase
  capacity   ``--capacity-seconds`` as fast as the broker acks (closed loop, same window)

Figures (build/bench/broker.json, and a summary on stdout): ``batches_per_s``, ``games_per_s``
(acks received), ``ack_p50_ms``/``ack_p99_ms`` (send to ack of each batch: the time a batch
waits in a full window before it is sent is not in it), ``samples_served_per_s`` (positions in
the Samples replies the reader got), the broker's CPU per batch, the machine and its load
average. Targets (2 cores): 1,000 batches/s, p99 ack under 50 ms, 50,000 positions/s served.

The whole run is made once per ``--validators`` count (``broker.validation_threads``: threads
that decode and check batches beside the poll loop, default 1 then 2); the top-level figures
are the first run's, and ``batches_per_s_1_validator``, ``batches_per_s_2_validators``, ... are
each run's capacity (closed-loop) rate, ``broker_cpu_ms_per_batch_N_validators`` its CPU per batch.
``--profile FILE`` runs the broker under cProfile and prints where its time went.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

from azgo_core.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build/bench"
TARGETS = {"batches_per_s": 1000.0, "ack_p99_ms": 50.0, "samples_served_per_s": 50_000.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")
HEARTBEAT_SECONDS = 1.0  # a worker's default distributed.heartbeat_interval
SAMPLES_MAX_BYTES = 16 << 20  # GetSamples' default max_bytes, as the learner sends it


# --- the games ----------------------------------------------------------------------------
def pool_path(cache: Path, board: int, games: int, seed: int) -> Path:
    return Path(cache) / f"broker-pool-{board}x{board}-{games}g-seed{seed}.azgb"


def load_pool(cache: Path, board: int, games: int, seed: int) -> list:
    """``games`` uniform-evaluator self-play games on ``board``: from the cache, or played now and cached."""
    from azgo_core.config import load_settings
    from azgo_core.records import decode_batch, encode_batch
    from azgo_core.search import uniform_evaluator
    from azgo_core.selfplay import SelfPlayRunner

    path = pool_path(cache, board, games, seed)
    if path.exists():
        return decode_batch(path.read_bytes())
    print(f"playing the pool: {games} self-play games on {board}x{board} (uniform evaluator), cached in {path}",
          flush=True)
    settings = load_settings(None, board={"size": board})
    records = SelfPlayRunner(settings.selfplay_config(), uniform_evaluator, worker_id="pool", seed=seed).play(games)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_bytes(encode_batch(records))
    os.replace(path.with_suffix(".tmp"), path)
    return records


def worker_id(index: int) -> str:
    return f"bench-{index:03d}"


def worker_batch(pool: list, index: int, games: int) -> tuple[bytes, int]:
    """Worker ``index``'s batch (``games`` games of the pool from its own offset, labelled with its id) and its moves."""
    from azgo_core.records import encode_batch

    start = (index * 37) % len(pool)
    records = [dataclasses.replace(pool[(start + i) % len(pool)], worker_id=worker_id(index)) for i in range(games)]
    return encode_batch(records), sum(r.num_moves for r in records)


# --- the load processes -------------------------------------------------------------------
def wait_for_go(out: Path) -> list[dict]:
    """The phases the driver writes once every load process is ready: [{"start", "end", "rate"}], monotonic s."""
    go = out / "go.json"
    while not go.exists():
        time.sleep(0.01)
    return json.loads(go.read_text())["phases"]


def run_generator(spec: dict, out: Path) -> None:
    """Simulated workers: hello, then batches on the phases' schedule; (sent, acked) times to out/acks-NAME.npy."""
    import zmq

    from azgo_core import protocol as P
    from azgo_core.records import decode_batch

    pool = decode_batch(Path(spec["pool"]).read_bytes())
    n_total, window, ctx = spec["n_workers"], spec["window"], zmq.Context()
    workers = []
    for index in spec["workers"]:
        blob, positions = worker_batch(pool, index, spec["games"])
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(spec["endpoint"])
        sock.send(P.encode(P.Hello(worker_id=worker_id(index), board_size=spec["board"], pid=os.getpid(), rid=1)))
        workers.append({"index": index, "id": worker_id(index), "sock": sock, "blob": blob, "positions": positions,
                        "sent": 0, "inflight": {}, "due": 0.0, "next_hb": 0.0})
    for w in workers:
        reply = P.decode(w["sock"].recv_multipart()[0]) if w["sock"].poll(60_000) else None
        if not isinstance(reply, P.Welcome):
            raise SystemExit(f"generator: hello of {w['id']} answered {reply!r}")
    (out / f"ready-{spec['name']}").write_text("ok")
    phases = wait_for_go(out)
    cpu0 = time.process_time()
    poller, by_sock = zmq.Poller(), {}
    for w in workers:
        poller.register(w["sock"], zmq.POLLIN)
        by_sock[w["sock"]] = w
        w["next_hb"] = phases[0]["start"] + HEARTBEAT_SECONDS * w["index"] / n_total
    sends, acks, errors, rid, phase = [], [], {}, 10, phases[0]
    while (now := time.monotonic()) < phases[-1]["end"]:
        phase = next(p for p in reversed(phases) if now >= p["start"] or p is phases[0])
        interval = n_total / phase["rate"] if phase["rate"] > 0 else 0.0
        for w in workers:
            if w["due"] < phase["start"]:  # a new phase: the workers' first sends spread over one interval
                w["due"] = phase["start"] + interval * w["index"] / n_total
            while len(w["inflight"]) < window and now >= w["due"]:
                rid, w["sent"] = rid + 1, w["sent"] + 1
                msg = P.SubmitBatch(batch_id=f"{w['id']}-{os.getpid()}-{w['sent']}", worker_id=w["id"],
                                    games=spec["games"], positions=w["positions"], generations=[0], rid=rid)
                w["sock"].send_multipart([P.encode(msg), w["blob"]], copy=False)
                w["inflight"][rid] = time.monotonic()
                w["due"] = w["due"] + interval if interval else now
            if now >= w["next_hb"]:
                rid, w["next_hb"] = rid + 1, w["next_hb"] + HEARTBEAT_SECONDS
                w["sock"].send(P.encode(P.Heartbeat(worker_id=w["id"], generation=0, rid=rid)))
        # replies until the next send is due (at most 50 ms: heartbeats, the phase's end)
        due = min((w["due"] for w in workers if len(w["inflight"]) < window), default=now + 0.05)
        for sock, _ in poller.poll(1000 * min(0.05, max(0.0, due - now))):
            w = by_sock[sock]
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                acked, reply = time.monotonic(), P.decode(frames[0])
                sent = w["inflight"].pop(reply.rid, None)
                if isinstance(reply, P.Error):
                    errors[reply.code.value] = errors.get(reply.code.value, 0) + 1
                    errors.setdefault("first", reply.message)
                elif sent is not None and isinstance(reply, P.BatchAck):
                    sends.append(sent)
                    acks.append(acked)
                    if reply.duplicate:  # never expected: every batch id is fresh
                        errors["duplicates"] = errors.get("duplicates", 0) + 1
    np.save(out / f"acks-{spec['name']}.npy", np.array([sends, acks], dtype=np.float64).reshape(2, -1))
    (out / f"result-{spec['name']}.json").write_text(json.dumps({"errors": errors, "cpu_s": time.process_time() - cpu0}))
    ctx.destroy(linger=0)


def run_reader(spec: dict, out: Path) -> None:
    """The learner's reads: GetSamples(after=cursor, window, max_bytes) again at once while ``more``, after
    ``idle`` seconds otherwise; (reply time, positions, bytes, batches) of each reply to out/reader.npy."""
    import zmq

    from azgo_core import protocol as P

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(spec["endpoint"])
    (out / "ready-reader").write_text("ok")
    phases = wait_for_go(out)
    cpu0 = time.process_time()
    time.sleep(max(0.0, phases[0]["start"] - time.monotonic()))
    cursor, rid, rows, errors = -1, 0, [], 0
    while time.monotonic() < phases[-1]["end"]:
        rid += 1
        sock.send(P.encode(P.GetSamples(after=cursor, window=spec["window"], max_bytes=SAMPLES_MAX_BYTES, rid=rid)))
        if not sock.poll(60_000):
            raise SystemExit("reader: no Samples reply within 60 s")
        frames = sock.recv_multipart()
        reply = P.decode(frames[0], blobs=len(frames) - 1)
        if not isinstance(reply, P.Samples):
            errors += 1
        else:
            rows.append((time.monotonic(), sum(b.positions for b in reply.batches), sum(map(len, frames[1:])),
                         len(reply.batches)))
            cursor = reply.batches[-1].seq if reply.batches else cursor
        if not isinstance(reply, P.Samples) or not reply.more:
            time.sleep(spec["idle"])
    np.save(out / "reader.npy", np.array(rows, dtype=np.float64).reshape(-1, 4))
    (out / "result-reader.json").write_text(json.dumps({"errors": errors, "cpu_s": time.process_time() - cpu0}))
    ctx.destroy(linger=0)


# --- the driver ---------------------------------------------------------------------------
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise SystemExit(f"{what}: the process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def publish_generation_0(settings, endpoint: str) -> None:
    import zmq

    from azgo_core import protocol as P
    from azgo_core.model import AZNet, serialize_model

    blob = serialize_model(AZNet(settings.net_config()), generation=0)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    sock.send_multipart([P.encode(P.PublishModel(generation=0, sha256=hashlib.sha256(blob).hexdigest(), rid=1)), blob])
    reply = P.decode(sock.recv_multipart()[0]) if sock.poll(60_000) else None
    ctx.destroy(linger=0)
    if not isinstance(reply, P.ModelAck):
        raise SystemExit(f"publishing generation 0 failed: {reply!r}")


def run(args, settings, tmp: Path, validators: int = 1) -> dict:
    """Start the broker (``validators`` checking threads) and the load processes, run the phases; the raw results."""
    router, pub, http = free_ports(3)
    config = {"board": {"size": args.board, "komi": settings.board.komi},
              "broker": {"router_port": router, "pub_port": pub, "http_port": http, "data_dir": str(tmp / "broker"),
                         "fsync": not args.no_fsync, "validation_threads": validators}}
    (tmp / "azgo.yaml").write_text(yaml.safe_dump(config))
    endpoint = f"tcp://127.0.0.1:{router}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZGO_")}
    profile = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())] if args.profile else []
    with open(tmp / "broker.log", "wb") as log:
        broker = subprocess.Popen([sys.executable, *profile, "-m", "azgo_broker", "--config", str(tmp / "azgo.yaml")],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    children: list[subprocess.Popen] = []
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{http}/healthz"), 60, "the broker's /healthz", broker)
        publish_generation_0(settings, endpoint)
        window = int(np.ceil(settings.learner.window_positions / max(settings.search.full_search_prob, 0.05)))
        common = {"endpoint": endpoint, "pool": str(pool_path(args.cache, args.board, args.pool, args.seed)), "board": args.board,
                  "games": args.games, "window": args.window, "n_workers": args.workers}
        specs = [{**common, "name": f"g{g}", "workers": list(range(g, args.workers, args.generators))}
                 for g in range(min(args.generators, args.workers))]
        specs.append({"name": "reader", "endpoint": endpoint, "window": window, "idle": args.reader_idle})
        for spec in specs:
            (tmp / f"spec-{spec['name']}.json").write_text(json.dumps(spec))
            role = "reader" if spec["name"] == "reader" else "generator"
            children.append(subprocess.Popen([sys.executable, __file__, "--child", role, "--spec",
                                              str(tmp / f"spec-{spec['name']}.json")], env=env))
        for spec, proc in zip(specs, children):
            wait_for(lambda s=spec: (tmp / f"ready-{s['name']}").exists(), 300, f"load process {spec['name']}", proc)

        t0 = time.monotonic() + 0.5
        measured = [(t0 + args.warmup, t0 + args.warmup + args.seconds)]
        phases = [{"start": t0, "end": measured[0][1], "rate": args.rate}]
        if args.capacity_seconds > 0:
            start = measured[0][1]
            measured.append((start + args.warmup, start + args.warmup + args.capacity_seconds))
            phases.append({"start": start, "end": measured[1][1], "rate": 0.0})
        # atomically: a load process reads it as soon as the name exists
        atomic_write(tmp / "go.json", json.dumps({"phases": phases}).encode())
        print(f"broker pid {broker.pid}: {args.workers} workers sending {args.games}-game batches on "
              f"{args.board}x{args.board}; rate phase ({args.rate:g} batches/s offered) {args.warmup:g}+{args.seconds:g} s"
              + (f", capacity phase {args.warmup:g}+{args.capacity_seconds:g} s" if args.capacity_seconds > 0 else ""),
              flush=True)
        cpu = []  # the broker's (user, system) seconds in each measured interval
        for a, b in measured:
            time.sleep(max(0.0, a - time.monotonic()))
            before = cpu_seconds(broker.pid)
            time.sleep(max(0.0, b - time.monotonic()))
            cpu.append(tuple(x1 - x0 for x0, x1 in zip(before, cpu_seconds(broker.pid))))
        for proc in children:
            if proc.wait(timeout=120):
                raise SystemExit(f"a load process failed (status {proc.returncode})")
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/status", timeout=10) as r:
            stored = json.load(r)["totals"]
        broker_cpu = sum(cpu_seconds(broker.pid))
    except BaseException:
        print("the broker's log ends with:\n" + "".join((tmp / "broker.log").read_text().splitlines(True)[-20:]))
        raise
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            broker.kill()
    results = {s["name"]: json.loads((tmp / f"result-{s['name']}.json").read_text()) for s in specs}
    errors: dict = {}
    for name, done in results.items():
        for k, v in (done["errors"].items() if name != "reader" else ()):
            errors[k] = v if k == "first" else errors.get(k, 0) + v
    return {"acks": np.concatenate([np.load(tmp / f"acks-{s['name']}.npy") for s in specs[:-1]], axis=1),
            "reader": np.load(tmp / "reader.npy"), "measured": measured, "cpu": cpu, "stored": stored,
            "broker_cpu": broker_cpu, "errors": errors, "reader_errors": results["reader"]["errors"],
            "reader_window": window, "generators_cpu": sum(d["cpu_s"] for n, d in results.items() if n != "reader"),
            "reader_cpu": results["reader"]["cpu_s"]}


def percentile_ms(latencies: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(latencies, q)) * 1000, 2) if len(latencies) else None


def phase_figures(raw: dict, games: int, i: int) -> dict:
    """Figures of the i-th measured interval: the acks received and the reader's replies inside it."""
    (a, b), (user, system) = raw["measured"][i], raw["cpu"][i]
    sent, acked = raw["acks"]
    inside = (acked >= a) & (acked < b)
    latency, batches, seconds = acked[inside] - sent[inside], int(inside.sum()), b - a
    reader = raw["reader"]
    served = reader[(reader[:, 0] >= a) & (reader[:, 0] < b)]
    return {
        "seconds": round(seconds, 3), "batches": batches,
        "batches_per_s": round(batches / seconds, 1), "games_per_s": round(batches * games / seconds, 1),
        "ack_p50_ms": percentile_ms(latency, 50), "ack_p99_ms": percentile_ms(latency, 99),
        "ack_max_ms": percentile_ms(latency, 100),
        "samples_served_per_s": round(float(served[:, 1].sum()) / seconds, 1), "samples_requests": len(served),
        "samples_mb_per_s": round(float(served[:, 2].sum()) / seconds / 1e6, 2),
        "broker_cpu_user_s": round(user, 2), "broker_cpu_system_s": round(system, 2),
        "broker_cpu_ms_per_batch": round((user + system) * 1000 / batches, 3) if batches else None,
    }


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": model,
            "python": platform.python_version(), "nice": os.nice(0),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def report(args, raw: dict, pool: list, started: dict) -> dict:
    from azgo_broker.server import ROUND_MAX

    phases = [phase_figures(raw, args.games, i) for i in range(len(raw["measured"]))]
    rate = phases[0]
    met = {"batches_per_s": rate["batches_per_s"] >= TARGETS["batches_per_s"],
           "ack_p99_ms": rate["ack_p99_ms"] is not None and rate["ack_p99_ms"] < TARGETS["ack_p99_ms"],
           "samples_served_per_s": rate["samples_served_per_s"] >= TARGETS["samples_served_per_s"]}
    lengths = np.array([r.num_moves for r in pool])
    return {
        **{k: rate[k] for k in ("batches_per_s", "games_per_s", "ack_p50_ms", "ack_p99_ms", "samples_served_per_s",
                                "broker_cpu_ms_per_batch")},
        "targets": {k: {"target": v, "value": rate[k], "met": met[k],
                        "ratio": round(rate[k] / v, 3) if rate[k] is not None else None} for k, v in TARGETS.items()},
        "rate_phase": {"offered_batches_per_s": args.rate, **rate},
        "capacity_phase": phases[1] if len(phases) > 1 else None,
        "games": {"board_size": args.board, "games_per_batch": args.games, "pool_games": len(pool),
                  "mean_game_moves": round(float(lengths.mean()), 1), "min_game_moves": int(lengths.min()),
                  "max_game_moves": int(lengths.max()), "batch_blob_bytes": len(worker_batch(pool, 0, args.games)[0]),
                  "source": "self-play with the uniform evaluator and the default search settings"},
        "load": {"workers": args.workers, "generators": args.generators, "window": args.window,
                 "heartbeat_s": HEARTBEAT_SECONDS, "warmup_s": args.warmup,
                 "reader": {"window": raw["reader_window"], "max_bytes": SAMPLES_MAX_BYTES, "idle_s": args.reader_idle},
                 "generators_cpu_s": round(raw["generators_cpu"], 2), "reader_cpu_s": round(raw["reader_cpu"], 2),
                 "ack_latency": "send to ack; a batch waiting in a full window before its send is not counted"},
        "broker": {"fsync": not args.no_fsync, "group_commit": f"one fsync per round of up to {ROUND_MAX} requests",
                   "cpu_s_total": round(raw["broker_cpu"], 2), "stored": raw["stored"], "errors": raw["errors"],
                   "reader_errors": raw["reader_errors"]},
        "machine": {**started, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
    }


def validator_key(n: int) -> str:
    return f"{n}_validator" if n == 1 else f"{n}_validators"


def by_validators(args, raws: dict[int, dict]) -> dict:
    """Each run's closed-loop rate (the rate phase's when there is no capacity phase) and CPU per batch."""
    out = {}
    for n, raw in raws.items():
        phases = [phase_figures(raw, args.games, i) for i in range(len(raw["measured"]))]
        phase = phases[-1]
        out[f"batches_per_s_{validator_key(n)}"] = phase["batches_per_s"]
        out[f"broker_cpu_ms_per_batch_{validator_key(n)}"] = phase["broker_cpu_ms_per_batch"]
    return out


def print_summary(r: dict) -> None:
    g, m = r["games"], r["machine"]
    print(f"games: {g['board_size']}x{g['board_size']}, {g['games_per_batch']} per batch, {g['mean_game_moves']} moves "
          f"on average, {g['batch_blob_bytes'] / 1e3:.0f} kB per batch")
    print(f"machine: {m['cpus']} cpus, load average {m['load_average_start'][0]:.2f} at the start, "
          f"{m['load_average_end'][0]:.2f} at the end; broker fsync {'on' if r['broker']['fsync'] else 'OFF'}")
    for name, p in (("rate", r["rate_phase"]), ("capacity", r["capacity_phase"])):
        if p is not None:
            print(f"{name:>9}: {p['batches_per_s']:7.1f} batches/s {p['games_per_s']:9.0f} games/s  ack p50 "
                  f"{p['ack_p50_ms']} ms p99 {p['ack_p99_ms']} ms  served {p['samples_served_per_s']:.0f} positions/s  "
                  f"broker CPU {p['broker_cpu_ms_per_batch']} ms per batch")
    for k, t in r["targets"].items():
        print(f"  target {k} {'<' if k == 'ack_p99_ms' else '>='} {t['target']:g}: {t['value']} "
              f"{'met' if t['met'] else 'MISSED'}")
    if r["broker"]["errors"]:
        print(f"  errors: {r['broker']['errors']}")
    for n in r["validators"]:
        print(f"  {n} validation thread(s): {r['batches_per_s_' + validator_key(n)]} batches/s as fast as acked, "
              f"broker CPU {r['broker_cpu_ms_per_batch_' + validator_key(n)]} ms per batch")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=64, help="simulated self-play workers (64)")
    ap.add_argument("--games", type=int, default=64, help="games per batch (64)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds of the rate phase (20)")
    ap.add_argument("--capacity-seconds", type=float, default=10.0, help="measured seconds of the capacity phase (10; 0: none)")
    ap.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds before each phase (3)")
    ap.add_argument("--rate", type=float, default=TARGETS["batches_per_s"], help="batches/s offered in the rate phase (1000)")
    ap.add_argument("--window", type=int, default=4, help="unacknowledged batches per worker (4, as a worker's link)")
    ap.add_argument("--generators", type=int, default=2, help="load-generator processes (2)")
    ap.add_argument("--board", type=int, default=9, help="board size (9)")
    ap.add_argument("--pool", type=int, default=256, help="self-play games in the pool (256)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pool's games (0)")
    ap.add_argument("--cache", default=str(CACHE), help="where the pool of games is kept (build/bench)")
    ap.add_argument("--reader-idle", type=float, default=0.05, help="the reader's pause after a reply without more (0.05 s)")
    ap.add_argument("--validators", default="1,2",
                    help="broker.validation_threads of each run, comma-separated (1,2: the run is made twice)")
    ap.add_argument("--no-fsync", action="store_true", help="broker.fsync off (only to see what the fsync costs)")
    ap.add_argument("--data-parent", help="where the broker's temp data dir goes (default: the system temp dir)")
    ap.add_argument("--profile", metavar="FILE", help="run the broker under cProfile, its stats to FILE (slows it)")
    ap.add_argument("--out", default=str(CACHE / "broker.json"), help="the JSON figures (build/bench/broker.json)")
    ap.add_argument("--child", choices=["generator", "reader"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec_path = Path(args.spec)
        spec = json.loads(spec_path.read_text())
        (run_generator if args.child == "generator" else run_reader)(spec, spec_path.parent)
        return 0

    from azgo_core.config import load_settings

    started = machine()
    settings = load_settings(None, board={"size": args.board})
    pool = load_pool(args.cache, args.board, args.pool, args.seed)
    # the broker's batch check, compiled here into numba's disk cache (the broker loads it from
    # there instead of compiling during the warm-up), on a batch it must accept
    from azgo_core.batchcheck import scan_batch

    if scan_batch(worker_batch(pool, 0, args.games)[0], args.board, max(args.games, 1), 64 << 20) is None:
        raise SystemExit("the pool's games do not pass the broker's batch check")
    counts = [int(n) for n in args.validators.split(",") if n.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"--validators: counts of at least 1, comma-separated, got {args.validators!r}")
    raws = {}
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="azgo-bench-broker-", dir=args.data_parent) as tmp:
            raws[n] = run(args, settings, Path(tmp), validators=n)
    result = report(args, raws[counts[0]], pool, started)
    result.update(validators=counts, **by_validators(args, raws))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"wrote {out}")
    if args.profile:
        import pstats

        print(f"the broker's profile ({args.profile}), by own time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
