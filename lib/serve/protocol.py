"""The requests the service takes, as OpenAI's client sends them, and its error shape.

Fields the service cannot honour are refused by name (a 400 that says which): a client
that asks for stop sequences or two choices learns it gets neither. Accepted and not used:
a message's `name`, `user`, and `top_p` and `seed` at temperature 0 (greedy). The
attention fields are the service's own, sent in `extra_body`.
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lib.model.result import RunSettings, SamplingSettings

DEFAULT_TOP_K = 32  # attention positions per token (the seed server's --attention-tokens-top-k)
MAX_TOP_K = 256
COMPLETION_DEFAULT_TOKENS = 16  # OpenAI's default for /v1/completions


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)  # 0: greedy
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    stop: str | list[str] | None = None
    user: str | None = Field(default=None, max_length=256)
    return_attention_tokens: bool = False
    attention_tokens_top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)

    def unsupported(self) -> str | None:
        """What the request asks for that the service does not do, in words."""
        if self.stop:
            return (
                "stop: stop sequences are not supported; a run ends at the model's end "
                "token or after max_tokens."
            )
        return None

    def settings(self, max_new_tokens: int) -> RunSettings:
        """The run it asks for: greedy at temperature 0, else a seeded draw (OpenAI's
        default temperature is 1)."""
        t = 1.0 if self.temperature is None else self.temperature
        sampling = (
            SamplingSettings(
                do_sample=True, temperature=t, top_p=self.top_p or 1.0, seed=self.seed or 0
            )
            if t > 0
            else SamplingSettings()
        )
        return RunSettings(max_new_tokens=max_new_tokens, sampling=sampling)


class CompletionRequest(_Request):
    prompt: str = Field(min_length=1)
    echo: Literal[False] = False


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = Field(default=None, max_length=64)


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1, max_length=64)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def unsupported(self) -> str | None:
        if self.max_tokens and self.max_completion_tokens:
            return "max_tokens and max_completion_tokens: give one of them"
        return super().unsupported()


class RunIn(BaseModel):
    """An app server's run (`lib.serve.remote`): its prompt and settings as the app keeps
    them (`RunSettings.to_dict`); the answer is the whole result, every layer and head."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    prompt: str
    settings: dict


def error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    """OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""
    body = {"message": message, "type": kind, "param": param, "code": code}
    return JSONResponse({"error": body}, status_code=status)
