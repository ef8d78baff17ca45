#!/usr/bin/python3
"""A NATS client nobody here wrote a library for: the text protocol over a plain socket.

Debian has no Python NATS package (`apt-cache policy python3-nats-py` finds none), so the
interop test speaks the protocol itself, from its documentation (INFO, CONNECT, PUB, HPUB,
SUB, MSG, HMSG, PING/PONG), independently of nats.c and of patchbay.

  nats_raw_client.py sub PORT SUBJECT COUNT      prints "ready", then one JSON line per message
  nats_raw_client.py pub PORT SUBJECT PAYLOAD [NAME=VALUE ...]   HPUB (PUB without headers)
  nats_raw_client.py request PORT SUBJECT PAYLOAD   prints the reply as one JSON line

Messages print as {"subject", "reply", "payload_hex", "headers": [[name, value], ...]}.
Exits 2 after 30 s without what it waits for.
"""
import json
import socket
import sys

TIMEOUT = 30.0


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        info = self.line()
        if not info.startswith(b"INFO "):
            raise SystemExit("expected INFO, got %r" % info)
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                  b'"lang":"python-raw","version":"0"}\r\n')

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n + 2:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]  # payload, then CRLF
        return data

    def round_trip(self):
        """PING, and wait for the PONG: the server has processed everything sent before."""
        self.send(b"PING\r\n")
        while True:
            msg = self.next_message(stop_at_pong=True)
            if msg is None:
                return

    def next_message(self, stop_at_pong=False):
        while True:
            line = self.line()
            if line == b"PING":
                self.send(b"PONG\r\n")
                continue
            if line == b"PONG":
                if stop_at_pong:
                    return None
                continue
            if line.startswith(b"+OK") or line.startswith(b"INFO "):
                continue
            if line.startswith(b"-ERR"):
                raise SystemExit("server error: %s" % line.decode())
            parts = line.decode().split(" ")
            if parts[0] == "MSG":
                subject, reply = parts[1], (parts[3] if len(parts) == 5 else None)
                payload = self.exactly(int(parts[-1]))
                return {"subject": subject, "reply": reply, "payload_hex": payload.hex(), "headers": []}
            if parts[0] == "HMSG":
                subject, reply = parts[1], (parts[3] if len(parts) == 6 else None)
                header_len, total = int(parts[-2]), int(parts[-1])
                body = self.exactly(total)
                block, payload = body[:header_len], body[header_len:]
                lines = block.decode("utf-8").split("\r\n")
                if not lines[0].startswith("NATS/1.0"):
                    raise SystemExit("bad header block %r" % block)
                headers = []
                for h in lines[1:]:
                    if not h:
                        continue
                    name, _, value = h.partition(":")
                    headers.append([name, value.strip()])
                return {"subject": subject, "reply": reply, "payload_hex": payload.hex(), "headers": headers}
            raise SystemExit("unexpected protocol line %r" % line)

    def publish(self, subject, payload, headers=(), reply=None):
        target = subject + (" " + reply if reply else "")
        if headers:
            block = "NATS/1.0\r\n" + "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
            block = block.encode("utf-8")
            self.send(b"HPUB %s %d %d\r\n%s%s\r\n" % (target.encode(), len(block), len(block) + len(payload),
                                                        block, payload))
        else:
            self.send(b"PUB %s %d\r\n%s\r\n" % (target.encode(), len(payload), payload))


def main():
    mode, port, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    conn = Conn(port)
    try:
        if mode == "sub":
            count = int(sys.argv[4])
            conn.send(b"SUB %s 1\r\n" % subject.encode())
            conn.round_trip()
            print("ready", flush=True)
            for _ in range(count):
                print(json.dumps(conn.next_message()), flush=True)
        elif mode == "pub":
            payload = sys.argv[4].encode("utf-8")
            headers = [arg.split("=", 1) for arg in sys.argv[5:]]
            conn.publish(subject, payload, headers)
            conn.round_trip()
            print("published", flush=True)
        elif mode == "request":
            inbox = "_INBOX.pyraw.%d" % port
            conn.send(b"SUB %s 7\r\n" % inbox.encode())
            conn.round_trip()
            conn.publish(subject, sys.argv[4].encode("utf-8"), [("x-from", "python")], reply=inbox)
            print(json.dumps(conn.next_message()), flush=True)
        else:
            raise SystemExit("unknown mode " + mode)
    except socket.timeout:
        print("timed out", flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
