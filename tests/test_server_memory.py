"""ext_proc streams end in their last reply's batch (extproc/server/memory.py): no status batch of its own that a
peer's reset can fail, and so leak (grpc/grpc#43360). Real grpc.aio server and client; every batch the server
starts is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import (
    ExternalProcessorServicer,
    ExternalProcessorStub,
    add_ExternalProcessorServicer_to_server,
)
from grpc._cython import cygrpc

from extproc.server.memory import add_ext_proc_servicer

STATUS_OP = "SendStatusFromServerOperation"
MESSAGE_OP = "SendMessageOperation"


def reply(tag: str) -> ep.ProcessingResponse:
    return ep.ProcessingResponse(
        request_body=ep.BodyResponse(response=ep.CommonResponse(body_mutation=ep.BodyMutation(body=tag.encode())))
    )


def tag_of(response: ep.ProcessingResponse) -> str:
    return response.request_body.response.body_mutation.body.decode()


HEADERS = ep.ProcessingRequest(request_headers=ep.HttpHeaders())
BODY = ep.ProcessingRequest(request_body=ep.HttpBody(body=b"{}", end_of_stream=True))


@dataclass
class Batch:
    ops: tuple[str, ...]
    ok: bool


@dataclass
class ServerBatches:
    """The batches the server started (client ones are left out), and an event set when a status went out."""

    done: list[Batch] = field(default_factory=list)
    status_sent: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def server_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerBatches]:
    batches = ServerBatches()
    original = cygrpc.execute_batch

    async def recording(call: object, operations: tuple[object, ...], loop: asyncio.AbstractEventLoop) -> None:
        if type(call).__name__ != "RPCState":
            return await original(call, operations, loop)
        batch = Batch(tuple(type(op).__name__ for op in operations), ok=False)
        try:
            await original(call, operations, loop)
            batch.ok = True
        finally:
            batches.done.append(batch)
            if STATUS_OP in batch.ops:
                batches.status_sent.set()

    monkeypatch.setattr(cygrpc, "execute_batch", recording)
    yield batches


class Scripted(ExternalProcessorServicer):
    """Like the controller's: a headers reply, then a body reply after which it ends the stream; `per_request`
    replies for each message and no end of its own when `ends` is False."""

    def __init__(self, per_request: int = 1, ends: bool = True) -> None:
        self.per_request, self.ends = per_request, ends
        self.closed = asyncio.Event()

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ep.ProcessingResponse]:
        try:
            async for message in request_iterator:
                phase = message.WhichOneof("request")
                for n in range(self.per_request):
                    yield reply(f"{phase}.{n}")
                if self.ends and phase == "request_body":
                    return
        finally:
            self.closed.set()


async def serve(servicer: Scripted, stock: bool = False) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    (add_ExternalProcessorServicer_to_server if stock else add_ext_proc_servicer)(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def envoy_like(target: str) -> list[str]:
    """Headers, then body; cancel the stream as soon as the last reply is in (Envoy's reset at filter destroy)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = ExternalProcessorStub(channel).Process()
        await call.write(HEADERS)
        first = await call.read()
        await call.write(BODY)
        last = await call.read()
        call.cancel()
    return [tag_of(first), tag_of(last)]


async def test_last_reply_carries_the_status(server_batches: ServerBatches) -> None:
    servicer = Scripted()
    server, target = await serve(servicer)
    try:
        assert await envoy_like(target) == ["request_headers.0", "request_body.0"]
        await asyncio.wait_for(server_batches.status_sent.wait(), 10)
        await asyncio.wait_for(servicer.closed.wait(), 10)
    finally:
        await server.stop(None)
    sends = [b for b in server_batches.done if MESSAGE_OP in b.ops or STATUS_OP in b.ops]
    assert [b.ops[-2:] for b in sends] == [("SendInitialMetadataOperation", MESSAGE_OP), (MESSAGE_OP, STATUS_OP)]
    assert all(b.ok for b in server_batches.done), server_batches.done


async def test_stock_registration_sends_the_status_alone(server_batches: ServerBatches) -> None:
    """The control: grpc's stream-stream path starts a status-only batch after the last reply, the batch a reset
    arriving first fails (whether it does here is a race, so only its existence is asserted)."""
    server, target = await serve(Scripted(), stock=True)
    try:
        await envoy_like(target)
        await asyncio.wait_for(server_batches.status_sent.wait(), 10)
    finally:
        await server.stop(None)
    assert (STATUS_OP,) in [b.ops for b in server_batches.done]


async def test_several_replies_per_request_and_a_peer_that_half_closes(server_batches: ServerBatches) -> None:
    servicer = Scripted(per_request=2, ends=False)
    server, target = await serve(servicer)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            call = ExternalProcessorStub(channel).Process()
            await call.write(HEADERS)
            tags = [tag_of(await call.read()) for _ in range(2)]
            await call.write(BODY)
            tags += [tag_of(await call.read()) for _ in range(2)]
            await call.done_writing()
            ended = await call.read()
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK
        await asyncio.wait_for(servicer.closed.wait(), 10)
    finally:
        await server.stop(None)
    assert tags == ["request_headers.0", "request_headers.1", "request_body.0", "request_body.1"]
    assert ended == ep.ProcessingResponse()  # every reply was sent: the half-close is answered with an empty one
    assert all(b.ok for b in server_batches.done), server_batches.done


async def test_a_stream_cancelled_midway_closes_its_exchange_and_the_next_one_is_served(
    server_batches: ServerBatches,
) -> None:
    servicer = Scripted()
    server, target = await serve(servicer)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            call = ExternalProcessorStub(channel).Process()
            await call.write(HEADERS)
            assert tag_of(await call.read()) == "request_headers.0"
            call.cancel()
        await asyncio.wait_for(servicer.closed.wait(), 10)
        servicer.closed.clear()
        assert await envoy_like(target) == ["request_headers.0", "request_body.0"]
        await asyncio.wait_for(servicer.closed.wait(), 10)
    finally:
        await server.stop(None)
