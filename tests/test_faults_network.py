"""Network faults: a self-play worker cut off from the broker by the kernel, not by a kill.

The worker runs in its own network namespace (``ip netns``), joined to ours by a veth pair on
a private /30; the broker listens on our end of the pair. Cutting the link (``ip link set
down`` on the worker's end) is a cable pulled out: both processes stay up, TCP connections go
silent without a FIN or RST, and only the heartbeats can tell. A ``blackhole`` qdisc on our
end drops the broker's packets only: the worker's batches still arrive and are stored, but
their acks never come back (a half-open connection).

What must hold, in the order the test plays it:

- a worker started while the broker is out of reach stays up and retries with growing back-off
  delays; once the link is up it says hello and delivers
- cut for longer than ``distributed.liveness_seconds``, the worker shows Offline on /status;
  it keeps playing (its outbox grows); once the link is back it reconnects on its own (no
  restart), shows Active again and its outbox lands
- a batch stored whose ack was lost is resent after the reconnect and acked as a duplicate,
  never stored twice
- at the end every batch the worker made is acked and stored exactly once

One test for all of it: a worker takes seconds to start (torch), the faults themselves are cheap.

Evidence: the worker's outbox journal (``put`` per batch made, ``ack`` with the broker's seq and
duplicate flag), the broker's segments read by ``azgo_broker.store.audit``, /status, the logs.
``AZGO_FAULT_ROUNDS`` (5 in ``make test``, 30 in ``make test-faults``) sets how many times the
link is cut: one cut per 5 rounds.

The broker binds beyond loopback, so CURVE is on (``security.curve: auto``), as for a real
remote worker: every reconnect is a fresh CURVE handshake through the broker's allow-list.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import re
import subprocess

import pytest
from fault_helpers import Cluster, T, unavailable
from procs import Service, tiny_config, wait_for

from azgo_tools.keys import create_keys

CUTS = max(1, int(os.environ.get("AZGO_FAULT_ROUNDS") or 5) // 5)
LINK = {"heartbeat_interval": 0.5, "liveness": 3, "request_timeout": 1.5, "reconnect_min": 0.2, "reconnect_max": 1.0}
"""Offline after 1.5 s of silence; a worker gives up on a connection after 1.5 s without a reply and tries
again after 0.2 s, 0.4 s, 0.8 s (+-20% jitter), then every 1 s."""
LIVENESS = LINK["heartbeat_interval"] * LINK["liveness"]
SILENT = re.compile(r"broker silent \((.*?)\): reconnecting in ([\d.]+) s")
_names = itertools.count()


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.z/30 that overlaps no address or route of this machine."""
    taken = [ipaddress.ip_network(a, strict=False) for a in re.findall(r"inet (\S+)", ip("-4", "-o", "addr"))]
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue  # default, multicast, ...
    rng = random.SystemRandom()
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{rng.randint(64, 254)}.{rng.randint(0, 255)}.{4 * rng.randint(0, 63)}/30")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free 10.x.y.z/30 for the test's veth pair")


class Netns:
    """A network namespace joined to ours by a veth pair: ``outer`` here, ``inner`` in the namespace."""

    def __init__(self):
        n = next(_names)
        self.name = f"azgo-{os.getpid()}-{n}"
        self.outer, self.inner = f"az{os.getpid()}x{n}o", f"az{os.getpid()}x{n}i"  # at most 15 characters
        net = free_subnet()
        self.here, self.there = (str(h) for h in net.hosts())
        ip("netns", "add", self.name)
        try:
            ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner, "netns", self.name)
            ip("addr", "add", f"{self.here}/30", "dev", self.outer)
            ip("link", "set", self.outer, "up")
            ip("-n", self.name, "addr", "add", f"{self.there}/30", "dev", self.inner)
            ip("-n", self.name, "link", "set", self.inner, "up")
            ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.delete()
            raise

    @property
    def prefix(self) -> tuple[str, ...]:
        """Command prefix that runs a program inside the namespace (``ip netns exec`` execs: same pid)."""
        return ("ip", "netns", "exec", self.name)

    def link(self, up: bool) -> None:
        """Plug (up) or pull (down) the worker's end of the cable."""
        ip("-n", self.name, "link", "set", self.inner, "up" if up else "down")

    def drop_replies(self, drop: bool) -> None:
        """Drop every packet from our end towards the namespace (the broker's replies), or stop dropping."""
        if drop:
            ip("link", "set", self.outer, "up")
            subprocess.run(["tc", "qdisc", "add", "dev", self.outer, "root", "blackhole"], check=True)
        else:
            subprocess.run(["tc", "qdisc", "del", "dev", self.outer, "root"], check=True)

    def delete(self) -> None:
        """Remove the namespace (which takes the veth pair with it) and, to be sure, our end."""
        ip("netns", "delete", self.name, check=False)
        if self.outer in ip("-o", "link", "show", check=False):
            ip("link", "delete", self.outer, check=False)


def silences(worker: Service) -> list[float]:
    """The reconnect delays of the worker's 'broker silent' lines, in order."""
    return [float(m.group(2)) for m in SILENT.finditer(worker.log())]


@pytest.fixture
def netns():
    try:
        ns = Netns()
    except (RuntimeError, OSError) as e:  # not root, no iproute2, no CAP_NET_ADMIN
        unavailable(f"no network namespace here ({e})")
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def cluster(tmp_path, netns):
    """A broker on our end of the veth pair, self-play workers inside the namespace."""
    distributed = {"broker_host": netns.here, "batch_size": 2, **LINK}  # small batches: more of them
    create_keys(tmp_path / "keys", ["learner", "selfplay"])  # beyond loopback: CURVE is on
    config = tiny_config(tmp_path, broker={"bind": netns.here}, distributed=distributed,
                         security={"keys_dir": str(tmp_path / "keys")})
    c = Cluster(tmp_path, config, worker_prefix=netns.prefix)
    try:
        yield c
    finally:
        c.close()
        c.dump_logs()  # pytest shows a teardown's output only when the test failed


def test_worker_waits_out_an_unreachable_broker_cuts_and_lost_acks_and_every_batch_lands_once(cluster, netns):
    c, ns = cluster, netns
    # 1. the broker is out of reach when the worker starts: it stays up and retries, ever more slowly
    ns.link(False)
    w = c.worker("w1")  # first: a worker takes longest to start (torch)
    c.start_broker()
    c.publish(0)
    wait_for(lambda: len(silences(w)) >= 3, T, "three attempts to reach the broker")
    delays = silences(w)
    assert w.alive(), "the worker must wait for the broker, not exit"
    assert delays[0] < delays[1] < delays[2], f"reconnect delays should grow: {delays}"
    assert c.status()["workers"] == [], "nothing reached the broker"
    ns.link(True)
    c.row_where("w1", "Active", lambda r: r["state"] == "Active")
    wait_for(lambda: c.stored(), T, "a first batch stored")
    assert "selfplay w1 said hello" in c.broker.log()
    assert "allow-list" in c.broker.log(), "the broker should run with CURVE on beyond loopback"

    # 2. cut for longer than the liveness window: Offline, then Active again by itself
    for cut in range(CUTS):
        cut_the_link(c, ns, w, cut + 1)

    # 3. a batch stored whose ack is lost: sent again after the reconnect, acked as a duplicate
    lost = lose_an_ack(c, ns, w)
    wait_for(lambda: not c.outbox("w1") & lost, T, "the batches whose ack was lost resent and acked")
    acks = [j for j in c.journal("w1") if j.event == "ack" and j.batch_id in lost]
    assert {j.batch_id for j in acks} == lost
    assert all(j.fields["duplicate"] == "1" for j in acks), "a stored batch sent again must be acked as a duplicate"
    wait_for(lambda: c.status()["totals"]["duplicates"] >= len(lost), T, "the duplicates counted on /status")

    assert "Traceback" not in w.log() + c.broker.log()
    c.check_exactly_once("w1", w)


def cut_the_link(c: Cluster, ns: Netns, w: Service, n: int) -> None:
    """Pull the worker's cable until the broker shows it Offline and it has given up on the connection; plug it back."""
    connects, silent = w.log().count("connected to broker"), len(silences(w))
    ns.link(False)
    before = c.outbox("w1") | set(c.stored())
    c.row_where("w1", f"Offline (cut {n})", lambda r: r["state"] == "Offline")
    wait_for(lambda: len(silences(w)) > silent, T, "the worker notices the silence")
    # it plays on: batches finished during the cut wait in its outbox
    made = wait_for(lambda: c.outbox("w1") - before, T, "a batch made during the cut")
    assert w.alive() and c.row("w1")["state"] == "Offline" and not made & set(c.stored())

    ns.link(True)  # nothing restarts: the worker's own retries find the broker again
    c.row_where("w1", "Active again", lambda r: r["state"] == "Active" and r["last_seen_s"] < LIVENESS)
    wait_for(lambda: made <= set(c.stored()), T, "the batches of the cut delivered")
    assert w.log().count("connected to broker") > connects and w.alive()


def lose_an_ack(c: Cluster, ns: Netns, w: Service, attempts: int = 5) -> set[str]:
    """Drop the broker's packets until a batch has been stored but its ack never reached the worker.

    Its batches still arrive while the worker believes the connection alive (until it has heard
    nothing for request_timeout); when it makes none in that window (a slow, loaded machine), the
    link is restored and the fault set again.
    """
    for _ in range(attempts):
        silent = len(silences(w))
        ns.drop_replies(True)
        try:
            # once the worker has given up on the connection no ack can reach it: a batch that is
            # stored and still in its outbox is one whose ack was lost
            wait_for(lambda n=silent: len(silences(w)) > n, T, "the worker notices the silence")
            lost = c.outbox("w1") & set(c.stored())
        finally:
            ns.drop_replies(False)
        if lost:
            return lost
        c.row_where("w1", "Active again", lambda r: r["state"] == "Active" and r["last_seen_s"] < LIVENESS)
    raise AssertionError(f"no batch was sent while the broker's replies were dropped, in {attempts} attempts")
