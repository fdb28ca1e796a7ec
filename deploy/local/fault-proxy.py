#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for S3 on loopback, for tests.

Each request is read whole, then, by a seeded random draw:
  - answered `503 SlowDown` (S3's XML error) without reaching the server   (--fail)
  - or the connection is reset (RST) without an answer                     (--reset)
  - or forwarded to the upstream server, the answer relayed, and closed.
Prints the port it listens on as the first line of stdout; one line per fault on stderr.

    fault-proxy.py --upstream 127.0.0.1:19000 [--port 0] [--fail 0.2] [--reset 0.1] [--seed 1]
"""
import argparse
import random
import socket
import struct
import sys
import threading

parser = argparse.ArgumentParser()
parser.add_argument("--upstream", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--fail", type=float, default=0.2)
parser.add_argument("--reset", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
upstream_host, upstream_port = args.upstream.rsplit(":", 1)
rng = random.Random(args.seed)
lock = threading.Lock()

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>')


def read_head(sock, buffer):
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None, buffer
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    return head, rest


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def with_connection_close(head):
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"])


def handle(client):
    try:
        head, rest = read_head(client, b"")
        if head is None:
            return
        body = rest
        need = content_length(head)
        while len(body) < need:
            data = client.recv(1 << 20)
            if not data:
                return
            body += data
        request_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        with lock:
            draw = rng.random()
        if draw < args.fail:
            print(f"503 {request_line}", file=sys.stderr, flush=True)
            client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: "
                           + str(len(SLOW_DOWN)).encode() + b"\r\nConnection: close\r\n\r\n" + SLOW_DOWN)
            return
        if draw < args.fail + args.reset:
            print(f"reset {request_line}", file=sys.stderr, flush=True)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        upstream = socket.create_connection((upstream_host, int(upstream_port)))
        upstream.sendall(with_connection_close(head) + b"\r\n\r\n" + body)
        answer = b""
        while True:
            data = upstream.recv(1 << 20)
            if not data:
                break
            answer += data
        upstream.close()
        response_head, _, response_body = answer.partition(b"\r\n\r\n")
        client.sendall(with_connection_close(response_head) + b"\r\n\r\n" + response_body)
    except OSError:
        pass
    finally:
        client.close()


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", args.port))
server.listen(64)
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    threading.Thread(target=handle, args=(connection,), daemon=True).start()
