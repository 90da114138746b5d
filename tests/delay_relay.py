#!/usr/bin/env python3
"""A TCP relay that delays what it forwards, both ways: the test bed's
latency, where the kernel has no sch_netem.

    delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS

Each chunk read on one side is written to the other DELAY_MS later, in
order; a round trip through the relay costs twice DELAY_MS.  Bytes are
passed as they are (TLS goes through untouched).  It prints "ready" once
it listens."""
import asyncio
import sys


async def pipe(reader, writer, delay):
    queue = asyncio.Queue()

    async def later():
        while True:
            due, data = await queue.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.ensure_future(later())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data or None))
            if not data:
                break
    except (ConnectionError, OSError):
        await queue.put((loop.time(), None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def serve(client_reader, client_writer, host, port, delay):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, writer, delay),
                         pipe(reader, client_writer, delay),
                         return_exceptions=True)
    writer.close()
    client_writer.close()


async def main():
    lhost, lport, thost, tport, ms = sys.argv[1:6]
    delay = int(ms) / 1000.0
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, thost, int(tport), delay), lhost, int(lport))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
