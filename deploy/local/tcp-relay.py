#!/usr/bin/env python3
"""A TCP relay for tests: connections to --listen are relayed byte for byte to --to.

partition.sh runs one per service so that hosts in network namespaces reach the local
Redis and PostgreSQL (which listen on loopback only) through the bridge's address.

    tcp-relay.py --listen 10.77.ID.1:16379 --to 127.0.0.1:16379 [--pidfile F]
"""
import argparse
import asyncio
import os

parser = argparse.ArgumentParser()
parser.add_argument("--listen", required=True)
parser.add_argument("--to", required=True)
parser.add_argument("--pidfile")
args = parser.parse_args()
listen_host, listen_port = args.listen.rsplit(":", 1)
to_host, to_port = args.to.rsplit(":", 1)


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_reader, client_writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(to_host, int(to_port))
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, listen_host, int(listen_port), reuse_address=True)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    async with server:
        await server.serve_forever()


asyncio.run(main())
