#!/usr/bin/python3
"""A pyzmq peer for the zmq transport's interop tests (Debian's python3-zmq, nothing of
patchbay): it speaks the wire format documented in transports/zmq/src/wire.hpp from its
description alone.

    interop_peer.py pub  ENDPOINT TOPIC N    XPUB bind; after the topic is subscribed, N messages
    interop_peer.py sub  ENDPOINT TOPIC N    SUB connect; N consecutive messages, checked
    interop_peer.py push ENDPOINT TOPIC N    PUSH bind; N messages
    interop_peer.py pull ENDPOINT TOPIC N    PULL bind; N messages, checked
    interop_peer.py req  ENDPOINT SERVICE N  REQ connect; N requests, replies checked

Prints "ok ..." and exits 0, or prints what was wrong and exits 1.
"""
import sys
import time

import zmq

TIMEOUT_MS = 60_000


def header_frames(i):
    return [b"patchbay-id\x00py-%d" % i, b"x-from\x00pyzmq", b"x-binary\x00\x00\xff"]


def check_message(frames, topic, prefix):
    """Returns (index, headers) of a patchbay message, or raises ValueError."""
    if len(frames) < 2 or frames[0] != topic:
        raise ValueError("bad frames %r" % frames[:2])
    headers = {}
    for f in frames[1:-1]:
        name, sep, value = f.partition(b"\x00")
        if not sep or not name:
            raise ValueError("bad header frame %r" % f)
        headers[name] = value
    if b"patchbay-id" not in headers or not headers[b"patchbay-time"].isdigit():
        raise ValueError("missing patchbay-id / patchbay-time: %r" % headers)
    if headers.get(b"x-from") != b"patchbay":
        raise ValueError("header x-from: %r" % headers)
    payload = frames[-1]
    if not payload.startswith(prefix):
        raise ValueError("payload %r" % payload)
    return int(payload[len(prefix):]), headers


def main():
    mode, endpoint, topic, n = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
    ctx = zmq.Context()
    try:
        if mode == "pub":
            s = ctx.socket(zmq.XPUB)
            s.setsockopt(zmq.LINGER, 5000)
            s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
            s.bind(endpoint)
            # The slow joiner, handled on this side: publish once the topic is subscribed.
            while s.recv() != b"\x01" + topic:
                pass
            for i in range(n):
                s.send_multipart([topic] + header_frames(i) + [b"py:%d" % i])
            print("ok sent %d" % n)
        elif mode == "push":
            s = ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.LINGER, 5000)
            s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
            s.bind(endpoint)
            for i in range(n):
                s.send_multipart([topic] + header_frames(i) + [b"py:%d" % i])
            print("ok pushed %d" % n)
        elif mode in ("sub", "pull"):
            if mode == "sub":
                s = ctx.socket(zmq.SUB)
                s.setsockopt(zmq.SUBSCRIBE, topic)
                s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
                s.connect(endpoint)
            else:
                s = ctx.socket(zmq.PULL)
                s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
                s.bind(endpoint)
            first = last = None
            while first is None or last - first + 1 < n:
                frames = s.recv_multipart()
                if frames[0] != topic:
                    continue  # another topic sharing the prefix
                i, _ = check_message(frames, topic, b"pb:")
                if first is None:
                    first = last = i
                elif i != last + 1:
                    raise ValueError("gap or reorder: %d after %d" % (i, last))
                else:
                    last = i
            print("ok received %d..%d" % (first, last))
        elif mode == "req":
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            for i in range(n):
                rid = b"r%d" % i
                s.send_multipart([topic, rid, b"x-from\x00pyzmq", b"q%d" % i])
                reply = s.recv_multipart()
                # request id, status, headers..., payload
                if reply[0] != rid or reply[1] != b"0" or reply[-1] != b"echo:q%d" % i:
                    raise ValueError("reply %r" % reply)
                if b"x-from\x00pyzmq" not in reply[2:-1]:
                    raise ValueError("headers not echoed: %r" % reply)
            print("ok %d requests" % n)
        else:
            raise ValueError("unknown mode " + mode)
    except (ValueError, zmq.Again) as e:
        print("FAILED: %s" % (e or "timed out"))
        return 1
    finally:
        ctx.destroy(linger=2000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
