"""The server ↔ fan-out process channel: frames, sockets passed along, a bounded queue."""

from __future__ import annotations

import os
import socket
import time

import numpy as np

from vigil.streaming.channel import Decoder, Message, Receiver, Sender, encode


def test_frames_decode_whatever_the_stream_cuts() -> None:
    cols = [np.arange(5, dtype=np.int32), np.linspace(0, 1, 5), np.array([], np.int64)]
    stream = encode("batch", {"tenant": "t", "new": [[1, "cpu", [["h", "a"]]]]}, cols) \
        + encode("close", {})
    for step in (1, 7, len(stream)):
        d = Decoder()
        got = [m for i in range(0, len(stream), step) for m in d.feed(stream[i:i + step])]
        assert [(k, h) for k, h, _ in got] == [
            ("batch", {"tenant": "t", "new": [[1, "cpu", [["h", "a"]]]]}), ("close", {})]
        for want, have in zip(cols, got[0][2], strict=True):
            assert have.dtype == want.dtype and np.array_equal(have, want)


def test_a_socket_travels_with_its_frame() -> None:
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    got: list[tuple[Message, list[int]]] = []
    sender = Sender(ours)
    try:
        sender.send(encode("plain", {}))
        sender.send(encode("conn", {"fd": 1}), [os.dup(w)])
        receiver = Receiver(theirs, lambda m, fds: got.append((m, fds)), lambda: None)
        while len(got) < 2:
            receiver.read()
        assert [(m[0], fds == []) for m, fds in got] == [("plain", True), ("conn", False)]
        (fd,) = got[1][1]
        os.write(fd, b"hi")  # the passed descriptor is the same pipe
        assert os.read(r, 2) == b"hi"
        os.close(fd)
    finally:
        sender.close()
        for s in (ours, theirs):
            s.close()
        os.close(r)
        os.close(w)


def test_batches_beyond_the_bound_are_dropped_the_rest_arrive_in_order() -> None:
    ours, theirs = socket.socketpair()
    sender = Sender(ours, max_queued=2)
    try:
        big = np.zeros(1 << 18)  # 2 MiB a frame: the socket fills at once, the queue next
        sent = [sender.send(encode("batch", {"n": i}, [big]), droppable=True)
                for i in range(20)]
        assert not all(sent) and sender.dropped == sent.count(False)
        assert sender.send(encode("alert", {}))  # not droppable: queued all the same
        got: list[str | int] = []
        receiver = Receiver(theirs, lambda m, _: got.append(m[1].get("n", m[0])), lambda: None)
        deadline = time.monotonic() + 30
        while len(got) < sent.count(True) + 1:
            assert time.monotonic() < deadline
            receiver.read()
        assert got == [i for i, ok in enumerate(sent) if ok] + ["alert"]
    finally:
        sender.close()
        ours.close()
        theirs.close()


def test_a_closed_peer_ends_the_reader() -> None:
    ours, theirs = socket.socketpair()
    ended: list[bool] = []
    receiver = Receiver(theirs, lambda m, fds: None, lambda: ended.append(True))
    ours.close()
    receiver.read()
    assert ended == [True]
    theirs.close()
