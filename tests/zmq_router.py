"""A scripted broker for client tests: a real ROUTER socket on a thread."""

from __future__ import annotations

import threading

import zmq

from azgo_core import protocol as P


class Router(threading.Thread):
    """A ROUTER that answers each request with ``respond(message, blobs)`` -> list of frames lists."""

    def __init__(self, port: int, respond):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.bind(f"tcp://127.0.0.1:{port}")
        self.respond, self.seen = respond, []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            if not self.sock.poll(50):
                continue
            ident, header, *blobs = self.sock.recv_multipart()
            message = P.decode(header)
            self.seen.append(message)
            for frames in self.respond(message, blobs):
                self.sock.send_multipart([ident, *frames])

    def close(self):
        self.done.set()
        self.join(5)
        self.sock.close(0)
        self.ctx.term()
