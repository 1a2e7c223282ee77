"""A streaming fake upstream: GET /health, and POST /v1/chat/completions answered as SSE, chunk by chunk.

The response headers and the first event go out at once; each further event follows after `--delay-ms`, in
its own HTTP/1.1 chunk, like a model server generating tokens. Run: python bench/sse_upstream.py --port P
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.payloads import COMPLETION_BYTES, sse_chunks


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class SseUpstream:
    def __init__(self, chunks: int, delay_s: float) -> None:
        self.events = sse_chunks(chunks)
        self.delay_s = delay_s

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = dict(
                    (k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines if h)
                )
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, path, _ = request_line.split(" ", 2)
                if method == "GET" and path == "/health":
                    self._plain(writer, b"200 OK", b'{"status":"ok"}')
                elif method == "POST" and path.endswith("/chat/completions"):
                    if b'"stream":true' in body.replace(b" ", b""):
                        await self._stream(writer)
                    else:
                        self._plain(writer, b"200 OK", COMPLETION_BYTES)
                else:
                    self._plain(writer, b"404 Not Found", b'{"error":"not found"}')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _plain(writer: asyncio.StreamWriter, status: bytes, body: bytes) -> None:
        writer.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)
        )

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for i, event in enumerate(self.events):
            if i:
                await asyncio.sleep(self.delay_s)
            writer.write(_chunk(event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=8, help="content events per response (plus usage and [DONE])")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="pause between events")
    args = parser.parse_args()
    upstream = SseUpstream(args.chunks, args.delay_ms / 1000)
    server = await asyncio.start_server(upstream.handle, args.host, args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
