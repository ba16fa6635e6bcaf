"""The generation service as a FastAPI app, spoken to as OpenAI's API is.

    GET  /health                alive; the model; runs being written and waiting; forward
                                passes made so far; its process id (one per replica);
                                fingerprints sent to the sidecar
    GET  /v1/models             the one model it serves
    POST /v1/completions        a prompt -> its continuation
    POST /v1/chat/completions   a conversation -> the assistant's reply
    POST /v1/tav/runs           an app server's run (`lib.serve.remote`): progress as
                                server-sent events, then the whole result (.npz, base64)

Runs go through the app's own scheduler (`lib.model.scheduler`): requests arriving together
are written in one batch, one forward pass per token for all, and identical requests share
one run. With `stream: true` each written token is sent at once as a server-sent event.
With `return_attention_tokens: true` (in the client's `extra_body`) every token comes
with its attention (`lib.serve.attention`): in a stream in `delta.attention_tokens` (chat)
or `choices[0].attention_tokens` (completions), otherwise in `message.attention_tokens` /
`choices[0].attention_tokens` for the whole run.

Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`): 400 for a
request that is invalid or asks for what is not supported, 404 for another model, 413 for
a body over `MAX_BODY_BYTES`, 429 when the queue is full, 503 when the run failed; never
a 500. A client that disconnects gives its place up: a run nobody else asked for stops.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from lib.config import Limits
from lib.model.batching import _TOKENIZE, Prepared, prepare, prepare_chat
from lib.model.errors import PromptError, QueueFull
from lib.model.loading import LoadedModel
from lib.model.request import RunRequest
from lib.model.result import RunSettings
from lib.model.result_store import ResultStore
from lib.model.scheduler import Scheduler, SchedulerLimits, Ticket
from lib.serve.attention import attention_token
from lib.serve.forward import Forwarder
from lib.serve.http import guard
from lib.serve.protocol import (
    COMPLETION_DEFAULT_TOKENS,
    DEFAULT_TOP_K,
    ChatRequest,
    CompletionRequest,
    RunIn,
    error,
)

MAX_BODY_BYTES = 1_000_000
POLL_S = 0.5  # how long a waiting request sleeps between looks at its run (a change wakes it)
WAITERS = 512  # threads that may wait on runs at once (anyio's shared pool has 40)


class _Hold:
    """One request's hold on a shared ticket, let go exactly once: from the stream's end,
    or from the response's background task, which runs even when a client left before
    the stream began."""

    def __init__(self, scheduler: Scheduler, ticket: Ticket) -> None:
        self.scheduler, self.ticket, self._done = scheduler, ticket, False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self.scheduler.release(self.ticket)


def scheduler_for(lm: LoadedModel, limits: Limits) -> Scheduler:
    """The scheduler the app builds for a model, with the same limits."""
    return Scheduler(
        lm, ResultStore(limits.result_cache_mb * 2**20), SchedulerLimits.from_limits(limits)
    )


class TextStream:
    """The run's text as it grows, decoded as the finished run's text is (special tokens
    left out); a character whose bytes are split over tokens waits for its last one."""

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self.sent = ""

    def advance(self, ids: list[int], final: bool = False) -> str:
        with _TOKENIZE:
            text = self.lm.tokenizer.decode(ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return ""
        new, self.sent = text[len(self.sent) :], text
        return new


def _with_result(event: dict, result) -> str:
    """The last progress event of an app server's run, with the whole result."""
    return _sse(event | {"npz": base64.b64encode(result.to_npz()).decode()})


def _sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(
    lm: LoadedModel,
    *,
    top_k: int = DEFAULT_TOP_K,
    limits: Limits | None = None,
    scheduler: Scheduler | None = None,
    sidecar: str | None = None,
) -> FastAPI:
    """The service for `lm`. `sidecar`: the atlas sidecar's URL, where every finished
    run's fingerprints are sent (`lib.serve.forward`)."""
    limits = limits or Limits.from_env()
    scheduler = scheduler or scheduler_for(lm, limits)
    forwarder = Forwarder(sidecar) if sidecar else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        scheduler.close()  # a worker inside torch at interpreter exit aborts the process

    app = FastAPI(title="Token attention visualizer: generation", lifespan=lifespan)
    app.state.forwarder = forwarder
    waiters: list[anyio.CapacityLimiter] = []  # made in the event loop, on first use

    async def wait(ticket: Ticket, version: int) -> int:
        """Until the run changes (or POLL_S), on a thread of the service's own pool."""
        if not waiters:
            waiters.append(anyio.CapacityLimiter(WAITERS))
        return await anyio.to_thread.run_sync(ticket.wait, version, POLL_S, limiter=waiters[0])

    def streamed(events: AsyncIterator[str], hold: _Hold) -> StreamingResponse:
        return StreamingResponse(
            events, media_type="text/event-stream", background=BackgroundTask(hold.release),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    names = {lm.spec, lm.name, "default"}

    def invalid(status: int, message: str, found: list[dict]) -> JSONResponse:
        param = ".".join(x for x in found[0]["loc"] if x != "body") if found else None
        return error(400 if status == 422 else status, message, param=param or None)

    guard(app, MAX_BODY_BYTES, invalid)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    @app.get("/health")
    def health() -> dict:
        running, waiting = scheduler.load()
        out = {"status": "ok", "model": lm.spec, "running": running, "waiting": waiting,
               "forward_passes": scheduler.forward_passes, "process": os.getpid()}  # fmt: skip
        if forwarder is not None:
            out["sidecar"] = {"url": sidecar, "sent": forwarder.sent, "failed": forwarder.failed}
        return out

    @app.get("/v1/models")
    def models() -> dict:
        card = {"id": lm.spec, "object": "model", "created": 0, "owned_by": "local"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await _serve(body, request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        return await _serve(body, request, chat=True)

    @app.post("/v1/tav/runs")
    async def app_run(body: RunIn):
        if body.model != lm.spec:
            return error(404, f"This service serves {lm.spec!r}, not {body.model!r}.",
                         param="model", code="model_not_found")  # fmt: skip
        try:
            settings = RunSettings.from_dict(body.settings)
            prepared = await anyio.to_thread.run_sync(prepare, lm, body.prompt, settings, limits)
            ticket = scheduler.submit(RunRequest(lm.spec, body.prompt, settings).key, prepared)
        except (PromptError, ValueError, KeyError, TypeError, OverflowError) as err:
            return error(400, f"settings: {err}", param="settings")
        except QueueFull as err:
            return error(429, str(err), kind="rate_limit_error", code="server_busy")
        hold = _Hold(scheduler, ticket)
        return streamed(_progress(hold), hold)

    async def _progress(hold: _Hold) -> AsyncIterator[str]:
        """The run's place, its tokens as they come, then the result or why not."""
        ticket = hold.ticket
        try:
            version, sent = -1, 0
            while True:
                version = await wait(ticket, version)
                over, pieces = ticket.over, ticket.pieces
                running, waiting = scheduler.load()
                event = {"status": ticket.status, "pieces": pieces[sent:],
                         "batch_size": ticket.batch_size, "ahead": scheduler.ahead(ticket),
                         "running": running, "waiting": waiting}  # fmt: skip
                sent = len(pieces)
                if over and ticket.status == "done":  # megabytes: encoded off the event loop
                    yield await anyio.to_thread.run_sync(_with_result, event, ticket.result)
                    break
                if over:
                    event["error"] = ticket.error or "The run did not finish."
                yield _sse(event)
                if over:
                    break
        finally:
            hold.release()

    # ---- one request ------------------------------------------------------------------

    def _prepare(body: CompletionRequest | ChatRequest, chat: bool) -> tuple[str, Prepared]:
        """The run's key and its checked request; raises PromptError."""
        if chat:
            wanted = body.max_completion_tokens or body.max_tokens or limits.max_new_tokens
            settings = body.settings(wanted)
            turns = [(m.role, m.content) for m in body.messages]
            prepared = prepare_chat(lm, turns, settings, limits)
            if len(turns) == 1 and turns[0][0] == "user":  # the app's own chat run
                return RunRequest(lm.spec, turns[0][1], prepared.settings).key, prepared
            blob = json.dumps([lm.spec, turns, prepared.settings.to_dict()])
            return "chat-" + uuid.uuid5(uuid.NAMESPACE_OID, blob).hex, prepared
        settings = body.settings(body.max_tokens or COMPLETION_DEFAULT_TOKENS)
        prepared = prepare(lm, body.prompt, settings, limits)
        return RunRequest(lm.spec, body.prompt, settings).key, prepared

    async def _serve(body: CompletionRequest | ChatRequest, request: Request, chat: bool):
        if body.model not in names:
            return error(404, f"The model {body.model!r} is not served here; this service "
                         f"serves {lm.spec!r}.", param="model", code="model_not_found")  # fmt: skip
        if (problem := body.unsupported()) is not None:
            return error(400, problem, param=problem.split(":")[0])
        given = "max_completion_tokens" if chat and body.max_completion_tokens else "max_tokens"
        wanted = getattr(body, given)
        if wanted is not None and wanted > limits.max_new_tokens:
            return error(400, f"{given}: at most {limits.max_new_tokens} new tokens per "
                         "request.", param=given)  # fmt: skip
        try:
            key, prepared = await anyio.to_thread.run_sync(_prepare, body, chat)
            ticket = scheduler.submit(key, prepared)
        except PromptError as err:
            return error(400, str(err), param="messages" if chat else "prompt")
        except QueueFull as err:
            return error(429, str(err), kind="rate_limit_error", code="server_busy")
        run = _Run(lm, ticket, prepared, chat, body, top_k)
        run.key = key
        hold = _Hold(scheduler, ticket)
        if body.stream:
            return streamed(_stream(run, hold), hold)
        try:
            version = -1
            while not ticket.over:
                version = await wait(ticket, version)
                if await request.is_disconnected():
                    return error(400, "The client went away.")
        finally:
            hold.release()  # nothing once it is over; else its place is given up
        if ticket.status != "done":
            return error(503, ticket.error or "The run did not finish.", kind="server_error")
        if forwarder is not None:
            forwarder.send(key, ticket.result)
        return await anyio.to_thread.run_sync(run.whole)

    async def _stream(run: _Run, hold: _Hold) -> AsyncIterator[str]:
        ticket = run.ticket
        try:
            yield _sse(run.chunk("", [], None, first=True))
            version, sent = -1, 0
            while True:
                version = await wait(ticket, version)
                over, n = ticket.over, ticket.written  # `over` first: no token is skipped
                if n > sent or over:
                    final = over and ticket.status == "done"
                    # decoding takes the tokenizer's lock, which the worker holds at times
                    text, steps = await anyio.to_thread.run_sync(run.advance, n, sent, final)
                    if text or steps:
                        yield _sse(run.chunk(text, steps, None))
                    sent = n
                if over:
                    break
            if ticket.status != "done":
                message = ticket.error or "The run did not finish."
                yield _sse({"error": {"message": message, "type": "server_error",
                                      "param": None, "code": None}})  # fmt: skip
            else:
                if forwarder is not None:
                    forwarder.send(run.key, ticket.result)
                yield _sse(run.chunk("", [], run.finish_reason()))
                if run.body.stream_options and run.body.stream_options.include_usage:
                    yield _sse(run.chunk(None, [], None) | {"choices": [], "usage": run.usage()})
            yield _sse("[DONE]")
        finally:  # a client gone mid-stream lands here too: its place is given up
            hold.release()

    return app


class _Run:
    """One request's run and how its answers are written (chat or completion)."""

    def __init__(self, lm, ticket: Ticket, prepared: Prepared, chat: bool, body, top_k: int):
        self.lm, self.ticket, self.prepared, self.chat, self.body = lm, ticket, prepared, chat, body
        self.k = body.attention_tokens_top_k or top_k
        self.text = TextStream(lm)
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.key = ""  # the run's key (`RunRequest.key`, or a conversation's)
        self.created = int(time.time())

    def advance(self, n: int, sent: int, final: bool) -> tuple[str, list[dict]]:
        """The text and the attention tokens of tokens `sent`..`n` (written ones)."""
        return self.text.advance(self.ticket.ids[:n], final=final), self.attention(range(sent, n))

    def attention(self, steps: range) -> list[dict]:
        """Each written token's attention tokens (when asked for)."""
        if not self.body.return_attention_tokens:
            return []
        n_prompt = len(self.prepared.ids)
        out = []
        for s in steps:
            token_id = self.ticket.ids[s]
            with _TOKENIZE:
                token = self.lm.tokenizer.decode([token_id])
            head = {"index": s, "token_id": token_id, "token": token, "position": n_prompt + s}
            out.append(head | attention_token(self.ticket.rows(s), self.k))
        return out

    def finish_reason(self) -> str:
        return "stop" if self.ticket.result.stop_reason == "eos" else "length"

    def usage(self) -> dict:
        n_prompt, n = len(self.prepared.ids), self.ticket.written
        return {"prompt_tokens": n_prompt, "completion_tokens": n, "total_tokens": n_prompt + n}

    def chunk(
        self, text: str | None, steps: list[dict], finish: str | None, first: bool = False
    ) -> dict:
        """One server-sent event's object."""
        if self.chat:
            delta: dict = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            if steps:
                delta["attention_tokens"] = steps
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            if steps:
                choice["attention_tokens"] = steps
            kind = "text_completion"
        return {"id": self.id, "object": kind, "created": self.created,
                "model": self.lm.spec, "choices": [choice]}  # fmt: skip

    def whole(self) -> dict:
        """The finished run as one response."""
        result = self.ticket.result
        steps = self.attention(range(self.ticket.written))
        if self.chat:
            message: dict = {"role": "assistant", "content": result.generated_text}
            if steps:
                message["attention_tokens"] = steps
            choice = {"index": 0, "message": message, "logprobs": None}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": result.generated_text, "logprobs": None}
            if steps:
                choice["attention_tokens"] = steps
            kind = "text_completion"
        choice["finish_reason"] = self.finish_reason()
        return {"id": self.id, "object": kind, "created": self.created, "model": self.lm.spec,
                "choices": [choice], "usage": self.usage()}  # fmt: skip
