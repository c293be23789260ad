"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/embeddings.

`rag:<collection>` answers from that collection with citations: inline `[n]` markers in the text and
a top-level `sources` list and the grounding check's `warnings` (in the full response, and in the
streamed chunk that finishes the choice). `llm` sends the conversation to the model as it is, for the
title and summary calls that chat clients make. Fields this server has no use for are ignored, as
clients send many.
A token sees and asks only the collections it may read; `llm` and embeddings read no document, so
any token this server accepts may use them.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from rag.server.responses import event_stream, rag_error_body, until_disconnected
from rag.server.security import authorize, identity_of
from rag.server.service import AnswerOptions, KnowledgeService, ModelTurn, citation_suffix, sources_payload, transcript

MODEL_PREFIX = "rag:"
DIRECT_MODEL = "llm"


class ContentPart(BaseModel):
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    role: str
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        """The text of the message; parts other than text (images) are left out."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stop: str | list[str] | None = None

    @property
    def options(self) -> AnswerOptions:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return AnswerOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens, temperature=self.temperature, stop=tuple(stop)
        )


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The last user message, and the (user, assistant) turns before it; system messages are the client's, not ours."""
    said = [(message.role, message.text) for message in messages if message.role in ("user", "assistant")]
    if not said or said[-1][0] != "user":
        raise HTTPException(400, "The last message must be the user's: it is the question answered.")
    history = [
        (question, answer)
        for (role, question), (next_role, answer) in zip(said, said[1:])  # each message with the one after it
        if role == "user" and next_role == "assistant"
    ]
    return said[-1][1], history


class Completion:
    """One chat completion as OpenAI shapes it, built from a model turn."""

    def __init__(self, service: KnowledgeService, request: ChatRequest, turn: ModelTurn, retrieval: bool):
        self.service = service
        self.request = request
        self.turn = turn
        self.retrieval = retrieval
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.prompt_text = ""
        self.text = ""
        self.standalone_question: str | None = None  # what a follow-up was condensed into for retrieval
        self.language: str | None = None  # the question's, in which rag answered (None without retrieval)
        self.warnings: list[str] = []  # the grounding check's lines, in that language
        self.declined_by_rag = False  # no source, or none about the question: the model read and wrote nothing

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """After the tokens: the citation markers still to add, and the sources."""
        if not self.retrieval:
            return "", []
        answer = self.turn.stream.answer
        self.prompt_text = answer.prompt
        self.standalone_question = answer.standalone_question
        self.language = answer.language
        self.warnings = answer.warnings
        declined = bool(self.turn.stream.state.get("declined"))
        self.declined_by_rag = declined or not answer.sources
        return citation_suffix(answer, declined), sources_payload(answer)

    def usage(self) -> dict[str, int]:
        if self.declined_by_rag:
            return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        prompt = self.service.count_tokens(self.prompt_text) if self.prompt_text else 0
        completion = self.service.count_tokens(self.text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def finish_reason(self, usage: dict[str, int]) -> str:
        limit = self.request.options.max_tokens or self.service.settings.llm.max_tokens
        return "length" if usage["completion_tokens"] >= limit else "stop"

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.request.model,
            "choices": [choice], **extra,
        }

    async def full(self) -> dict[str, Any]:
        self.text = await self.turn.text()
        suffix, sources = self.finish()
        usage = self.usage()
        self.text += suffix
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.request.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": self.finish_reason(usage)}
            ],
            "usage": usage,
            "sources": sources,
            "standalone_question": self.standalone_question,
            "language": self.language,
            "warnings": self.warnings,
        }

    async def frames(self) -> AsyncIterator[str]:
        yield data_frame(self.chunk({"role": "assistant", "content": ""}))
        try:
            async for token in self.turn.tokens():
                self.text += token
                yield data_frame(self.chunk({"content": token}))
            suffix, sources = self.finish()
        except Exception as exc:  # the status line is sent: the error travels as a frame, as OpenAI's does
            yield data_frame(rag_error_body(exc)[0])
            yield "data: [DONE]\n\n"
            return
        usage = self.usage()
        if suffix:
            self.text += suffix
            yield data_frame(self.chunk({"content": suffix}))
        finished = self.chunk(
            {}, self.finish_reason(usage), sources=sources, standalone_question=self.standalone_question,
            language=self.language, warnings=self.warnings,
        )
        yield data_frame(finished)
        options = self.request.stream_options
        if options and options.include_usage:
            yield data_frame({**self.chunk({}), "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"


def data_frame(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def openai_router(service: KnowledgeService) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/models")
    def models(http: Request) -> dict[str, Any]:
        created = int(time.time())
        identity = identity_of(http.scope)
        readable = [name for name in service.collection_names() if identity.allows(name, "read")]
        ids = [f"{MODEL_PREFIX}{name}" for name in readable] + [DIRECT_MODEL]
        return {"object": "list", "data": [{"id": id, "object": "model", "created": created, "owned_by": "rag"} for id in ids]}

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(request: ChatRequest, http: Request) -> dict[str, Any] | StreamingResponse | Response:
        if request.model == DIRECT_MODEL:
            messages = [(message.role, message.text) for message in request.messages]
            turn, retrieval = service.direct_turn(messages, request.options), False
            prompt = transcript(messages)
        elif request.model.startswith(MODEL_PREFIX):
            collection = request.model.removeprefix(MODEL_PREFIX)
            authorize(http.scope, collection, "read")
            service.settings_for(collection)  # an unknown collection is a 404 before anything is generated
            question, history = question_and_history(request.messages)
            turn, retrieval = service.answer_turn(question, history, collection, request.options), True
            prompt = ""  # the answer's own prompt, known once it is made
        else:
            raise HTTPException(404, f"No model {request.model!r}: use rag:<collection> or {DIRECT_MODEL} (GET /v1/models lists them).")
        completion = Completion(service, request, turn, retrieval)
        completion.prompt_text = prompt
        if request.stream:
            return event_stream(completion.frames())
        return await until_disconnected(http, completion.full())  # a client that gives up frees the model

    @router.post("/embeddings")
    def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        import numpy as np

        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts:
            raise HTTPException(400, "input is empty: give a string or a list of strings.")
        vectors, tokens = service.embed(texts)
        if request.encoding_format == "base64":
            encoded: list[Any] = [base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode() for vector in vectors]
        else:
            encoded = vectors
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(encoded)],
            "model": service.embedding_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return router
