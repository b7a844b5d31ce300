"""The Python floor: the webhook's mutation with nothing around it (docs/performance.md).

A raw ASGI app that answers `POST /mutate` with `webhook.mutation.plan` + base64 + orjson, byte
for byte the webhook's answer to the benchmark's payloads, and `/readyz` with `ok`; no
framework, no envelope checks, no metrics, no logs. It runs on the same uvicorn set-up as
`shm-webhook serve` (uvloop, httptools, `webhook.tls.server_context`, GC frozen after
start-up), so the bench's webhook/floor ratio is the cost of our stack, and floor/Go what
Python, uvicorn and the mutation's own code cost against the Go reference (bench/goref).

Two switches serve the attribution of bench/attribution.py: `--guarded` runs the webhook's
transport (`webhook.transport.GuardedHttpToolsProtocol`) instead of uvicorn's plain httptools
protocol, and `--cached` answers every request with the answer to the first body, read but
not parsed: what TLS, HTTP and the body's reading cost alone.

    python -m bench.floor --port 8444 --cert tls.crt --key tls.key [--guarded] [--cached]
"""

from __future__ import annotations

import argparse
import base64
import gc
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from webhook import tls
from webhook.mutation import plan
from webhook.policy import Policy
from webhook.transport import GuardedHttpToolsProtocol

POLICY = Policy()
_JSON = [(b"content-type", b"application/json")]
# --cached: None when off, else the answer to the first body once it was answered.
_cache: list[bytes] | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["path"] == "/mutate":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if _cache:
            answer = _cache[0]
        else:
            answer = mutate(body)
            if _cache is not None:
                _cache.append(answer)
    else:
        answer = b"ok"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_JSON, (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def mutate(body: bytes) -> bytes:
    """The AdmissionReview answer to `body`, a Pod CREATE."""
    review = orjson.loads(body)
    request = review["request"]
    result = plan(request["object"], POLICY)
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    if result.ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(result.ops)).decode("ascii")
    if result.warnings:
        response["warnings"] = result.warnings
    return orjson.dumps(
        {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
    )


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            gc.collect()
            gc.freeze()  # as `shm-webhook serve` does after start-up
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    global _cache
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--guarded", action="store_true", help="the webhook's transport limits")
    parser.add_argument("--cached", action="store_true", help="answer the first answer again")
    args = parser.parse_args()
    _cache = [] if args.cached else None
    context = tls.server_context(args.cert, args.key)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=GuardedHttpToolsProtocol if args.guarded else "httptools",
        ws="none",
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # as `shm-webhook serve`
        ssl_context_factory=lambda _config, _default: context,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
