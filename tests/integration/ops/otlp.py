# SPDX-License-Identifier: Apache-2.0
"""A small OTLP/HTTP trace receiver: what a collector's `otlp` receiver does with
`POST /v1/traces`, decoded with opentelemetry-proto and kept in memory for the test to read.
The services export to it with their real exporter (OTEL_EXPORTER_OTLP_ENDPOINT)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from zg_shared.localservers import free_port

PROTOBUF = "application/x-protobuf"
Value = str | bool | int | float | bytes | tuple["Value", ...] | None


def _value(value: AnyValue) -> Value:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return tuple((kv.key, _value(kv.value)) for kv in value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: list[KeyValue]) -> dict[str, Value]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name
    name: str
    kind: str  # SPAN_KIND_SERVER, ...
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Value]
    links: tuple[str, ...]  # the trace ids this span links to
    resource: dict[str, Value] = field(default_factory=dict)
    events: tuple[dict[str, Value], ...] = ()


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    refused: int = 0
    port: int = 0

    @property
    def endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        try:
            if request.content_type != PROTOBUF:
                raise DecodeError(f"content type {request.content_type}")
            message.ParseFromString(body)
        except DecodeError:
            self.refused += 1
            return web.Response(status=400)
        self.requests += 1
        for resource_spans in message.resource_spans:
            resource = _attributes(list(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            kind=Span.SpanKind.Name(span.kind),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(list(span.attributes)),
                            links=tuple(link.trace_id.hex() for link in span.links),
                            resource=resource,
                            events=tuple(_attributes(list(e.attributes)) for e in span.events),
                        )
                    )
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type=PROTOBUF)

    async def start(self) -> web.AppRunner:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.port = free_port()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]
