"""What both services (the atlas sidecar and the generation service) do at their door:
refuse a body over a size limit with a 413 before reading it all, and describe invalid
input by where and what, never echoing it (FastAPI's own 422 handler echoes the input,
and a NaN in it cannot be written as JSON: a 500)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

Reply = Callable[[int, str, list[dict]], JSONResponse]  # (status, message, problems)


def problems(err: RequestValidationError) -> list[dict]:
    """Each problem's place and message, without the value that caused it."""
    return [
        {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "invalid"))}
        for e in err.errors()
    ]


def guard(app: FastAPI, max_body_bytes: int, reply: Reply, invalid_status: int = 422) -> None:
    """Install the body limit and the validation handler; `reply` writes the service's
    own error shape."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        found = problems(err)
        first = found[0] if found else {"loc": [], "msg": "invalid"}
        where = ".".join(x for x in first["loc"] if x != "body") or "body"
        return reply(invalid_status, f"{where}: {first['msg']}", found)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, reply=reply)


class BodyLimit:
    """A plain ASGI middleware (Starlette's `BaseHTTPMiddleware` would stand between a
    streaming response and the client's disconnect, so a stream nobody reads any more
    went on for seconds): a body announced or found larger than `max_bytes` gets a 413,
    and a body without a length is read, up to the limit, before the app sees it."""

    def __init__(self, app, max_bytes: int, reply: Reply) -> None:
        self.app, self.max_bytes, self.reply = app, max_bytes, reply

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = self.reply(413, f"The body is larger than {self.max_bytes} bytes.", [])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # gone before it finished sending
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await too_large(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:  # after the body: what the server says next (a disconnect)
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
