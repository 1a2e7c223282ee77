"""Serving ext_proc so that ending a stream leaks no native memory.

grpcio's aio server frees a batch's C op array (and the buffers its ops hold) only when the batch succeeds: a
failed batch leaks them (grpc/grpc#43360; measured on 1.76, 1.80 and 1.85.3). A stream-stream handler's status goes
in a batch of its own, started after the last reply; Envoy acts on that reply, finishes the HTTP request and
resets the gRPC stream, often before the status batch runs, which then fails. At c16 one stream in five: ~30
bytes of RSS per stream that glibc can neither reuse nor trim, for good.

Served as a stream-unary method instead (gRPC does not care on the wire), the last reply is the handler's return
value, which grpc sends in one batch with the OK status: there is no later batch to fail. The servicer keeps its
async-generator `Process`; each reply is held until the generator asks for the next request (then it is written)
or ends (then it was the last one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorServicer
from google.protobuf.message import Message

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"

Request = TypeVar("Request", bound=Message)
Reply = TypeVar("Reply", bound=Message)
StreamMethod = Callable[[AsyncIterator[Request], grpc.aio.ServicerContext], AsyncGenerator[Reply, None]]


class _HeldReply(Generic[Request, Reply]):
    """The requests the servicer reads; asking for the next one first sends the reply held until then.

    Read with `context.read()`, not through grpc's request iterator: that is an async generator which the
    servicer leaves suspended after its last message, in a reference cycle, so the garbage collector finds it
    and asyncio schedules a task to close it (one more task per stream, and a cycle to collect)."""

    __slots__ = ("_context", "reply")

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self.reply: Reply | None = None

    async def send(self) -> None:
        if self.reply is not None:
            reply, self.reply = self.reply, None
            await self._context.write(reply.SerializeToString())  # a stream-unary context does not serialize

    def __aiter__(self) -> _HeldReply[Request, Reply]:
        return self

    async def __anext__(self) -> Request:
        await self.send()
        message = await self._context.read()
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        return message


def last_reply_with_status(
    method: StreamMethod[Request, Reply], ended: Reply
) -> Callable[[AsyncIterator[Request], grpc.aio.ServicerContext], Awaitable[Reply]]:
    """A stream-unary behaviour serving the stream-stream `method` (which yields its replies, never calls
    `context.write`): its last reply goes out with the status.

    `ended` is returned when the peer half-closes with every reply already sent (Envoy does so only as it resets
    the stream, and ignores messages once its processing is complete); one yield to the loop first lets the
    reset, when it came in the same read, cancel the handler instead of failing (and leaking) a last batch."""

    async def serve(_requests: AsyncIterator[Request], context: grpc.aio.ServicerContext) -> Reply:
        held: _HeldReply[Request, Reply] = _HeldReply(context)
        async with aclosing(method(held, context)) as replies:
            async for reply in replies:
                await held.send()  # two replies in a row: the first was not the last
                held.reply = reply
        if held.reply is not None:
            return held.reply
        await asyncio.sleep(0)  # a reset that came with the half-close cancels us here: no batch to fail
        return ended

    return serve


def add_ext_proc_servicer(servicer: ExternalProcessorServicer, server: grpc.aio.Server) -> None:
    """`add_ExternalProcessorServicer_to_server`, with `Process` ending each stream in its last reply's batch."""
    handlers = {
        "Process": grpc.stream_unary_rpc_method_handler(
            last_reply_with_status(servicer.Process, ep.ProcessingResponse()),
            request_deserializer=ep.ProcessingRequest.FromString,
            response_serializer=ep.ProcessingResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(EXT_PROC_SERVICE, handlers),))
    server.add_registered_method_handlers(EXT_PROC_SERVICE, handlers)
