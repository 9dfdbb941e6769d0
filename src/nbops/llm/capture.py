"""LLM calls a tracked cell makes through the OpenAI Python SDK, recorded while the cell runs.

While a :class:`Session` is active, ``create`` of the SDK's chat completions and responses resources (sync and async
clients, ``stream=True`` included, any ``base_url``) is wrapped at class level; the very functions that were there
are put back when the last session ends. The wrapper does as little as it can on the call's path: it checks the
budget, notes the time, a shallow copy of the request and the prompt versions the cell loaded
(:mod:`nbops.llm.used`), calls the SDK, and keeps a reference to the answer. Everything else (the answer's fields,
the trace record, masking) happens when the cell ends (:meth:`Session.records`).

The user's call is never changed by the recording: the SDK's result is returned (a stream: the same object, its
iterator watched as it is consumed) and its exception raised unchanged; a failure of the recording itself is a log
line. The one exception nbops raises on purpose is :class:`~nbops.errors.BudgetExceeded`, before a call that would
take the run past its budget.

What is not seen: a ``create`` bound before the cell started (``ask = client.chat.completions.create`` in an
earlier cell holds the SDK's own function), other SDKs, and the usage of raw-response wrappers
(``with_raw_response``: recorded, without tokens).
"""
from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
import time
import weakref
from typing import Any

from ..errors import BudgetExceeded
from ..importhook import OnImport
from . import used
from .cost import Budget

log = logging.getLogger("nbops")

# (module, class, kind, is_async): the SDK resources whose ``create`` is wrapped
TARGETS = [
    ("openai.resources.chat.completions", "Completions", "chat", False),
    ("openai.resources.chat.completions", "AsyncCompletions", "chat", True),
    ("openai.resources.responses", "Responses", "responses", False),
    ("openai.resources.responses", "AsyncResponses", "responses", True),
]
_REQUEST_KEYS = {"model", "messages", "input", "instructions", "stream", "extra_headers", "extra_query",
                 "extra_body", "timeout"}

_LOCK = threading.Lock()
_SESSIONS: list["Session"] = []           # active sessions, innermost last
_SAVED: dict[tuple, Any] = {}              # (class, "create") -> the function that was there
_HOOK: OnImport | None = None
_KEYS_SEEN: "weakref.WeakSet" = weakref.WeakSet()   # clients whose api key the redactor has learned


class Call:
    """One call as it happened; its answer is read when the cell ends."""
    __slots__ = ("kind", "model", "host", "request", "params", "prompts", "start_ns", "t0", "t_first", "t_end",
                 "result", "error", "stream", "parts", "chunks", "reported")

    def __init__(self, kind: str, model, host, request: dict, params: dict, prompts):
        self.kind, self.model, self.host, self.request, self.params, self.prompts = \
            kind, model, host, request, params, prompts
        self.start_ns, self.t0 = time.time_ns(), time.perf_counter()
        self.t_first = self.t_end = None
        self.result = self.error = None
        self.stream = False
        self.parts: list[str] = []       # streamed text as it arrived
        self.chunks = 0                  # streamed pieces with content (the counted output tokens)
        self.reported = None             # (input, output) tokens the server reported

    @property
    def latency_ms(self) -> float | None:
        return None if self.t_end is None else (self.t_end - self.t0) * 1000

    @property
    def ttft_ms(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t0) * 1000


class Session:
    """The LLM calls of one tracked cell; ``budgets`` are checked before each call."""

    def __init__(self, budgets: list[Budget] = ()):
        self.calls: list[Call] = []
        self.budgets = [b for b in budgets if b is not None and b.limit is not None]
        self.stopped: BudgetExceeded | None = None

    # -- on the call's path ---------------------------------------------------------------------------------
    def begin(self, resource, kind: str, kwargs: dict) -> Call | None:
        """Before the SDK call: budget check (raises BudgetExceeded), then the request noted. None if noting
        failed (the call goes on unrecorded)."""
        model = kwargs.get("model")
        if self.budgets:
            payload = kwargs.get("messages") if kind == "chat" else [kwargs.get("instructions"), kwargs.get("input")]
            max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens") or \
                kwargs.get("max_output_tokens")
            try:
                for b in self.budgets:
                    b.check(model, payload, max_tokens)
            except BudgetExceeded as exc:
                self.stopped = exc
                raise exc.with_traceback(None) from None
        try:
            client = getattr(resource, "_client", None)
            host = None
            if client is not None:
                if client not in _KEYS_SEEN:
                    _learn_client(client)
                host = getattr(getattr(client, "base_url", None), "host", None)
            if kind == "chat":
                msgs = kwargs.get("messages")
                request = {"messages": [dict(m) if isinstance(m, dict) else m for m in msgs]
                           if isinstance(msgs, (list, tuple)) else msgs}
            else:
                inp = kwargs.get("input")
                request = {"input": [dict(m) if isinstance(m, dict) else m for m in inp]
                           if isinstance(inp, (list, tuple)) else inp}
                if kwargs.get("instructions") is not None:
                    request["instructions"] = kwargs["instructions"]
            params = {k: v for k, v in kwargs.items() if k not in _REQUEST_KEYS and "header" not in k}
            call = Call(kind, model, host, request, params, used.used())
            call.stream = bool(kwargs.get("stream"))
            self.calls.append(call)
            return call
        except Exception as exc:  # noqa: BLE001 - never break the user's call
            log.debug("nbops: an LLM call could not be noted: %s", exc)
            return None

    def failed(self, call: Call, exc: BaseException) -> None:
        call.t_end = time.perf_counter()
        call.error = f"{type(exc).__name__}: {exc}"

    def answered(self, call: Call, result):
        """After the SDK call: the result (a stream: the same object, its iterator watched)."""
        call.t_end = time.perf_counter()
        call.result = result
        try:
            if call.stream:
                it = getattr(result, "_iterator", None)
                if it is not None:
                    call.t_end = None
                    result._iterator = (_watch_async(it, call, self) if hasattr(it, "__anext__")
                                        else _watch(it, call, self))
            else:
                call.reported = _usage(getattr(result, "usage", None))
                self._spent(call)
        except Exception as exc:  # noqa: BLE001 - never break the user's call
            log.debug("nbops: an LLM answer could not be noted: %s", exc)
        return result

    def _spent(self, call: Call) -> None:
        if not self.budgets:
            return
        from .cost import price_of

        p = price_of(call.model)
        tin, tout = tokens(call)
        if p is not None and tin is not None:
            usd = sum(p.cost(tin, tout or 0))
            for b in self.budgets:
                b.add(usd)

    def chunk(self, call: Call, item) -> None:
        """One streamed piece: chat chunk (``choices[0].delta.content``, a final ``usage``) or responses event."""
        if call.t_first is None:
            call.t_first = time.perf_counter()
        typ = getattr(item, "type", None)
        if typ is not None and isinstance(typ, str) and typ.startswith("response."):
            if typ == "response.output_text.delta":
                call.parts.append(item.delta or "")
                call.chunks += 1
            elif typ == "response.completed":
                call.reported = _usage(getattr(getattr(item, "response", None), "usage", None))
            return
        choices = getattr(item, "choices", None)
        if choices:
            text = getattr(getattr(choices[0], "delta", None), "content", None)
            if text:
                call.parts.append(text)
                call.chunks += 1
        u = getattr(item, "usage", None)
        if u is not None:
            call.reported = _usage(u)

    def ended(self, call: Call, exc: BaseException | None) -> None:
        if call.t_end is None:
            call.t_end = time.perf_counter()
        if exc is not None and not isinstance(exc, GeneratorExit):
            call.error = f"{type(exc).__name__}: {exc}"
        self._spent(call)

    # -- when the cell ends ---------------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """Trace records of the calls (see :mod:`nbops.tracking.traces`), in the order they were made."""
        from . import record

        out = []
        for c in self.calls:
            try:
                out.append(record.trace_record(c))
            except Exception as exc:  # noqa: BLE001 - one odd answer does not cost the others their trace
                log.warning("nbops: the trace of an LLM call to %s (%s) was not recorded: %s", c.host, c.model, exc)
        return out


def tokens(call: Call) -> tuple[int | None, int | None]:
    """(input, output) tokens: as the server reported them, else output counted from the streamed pieces and input
    estimated from the request's text (``usage_source`` says which)."""
    if call.reported is not None:
        return call.reported
    if call.stream and (call.chunks or call.t_end is not None) and call.error is None:
        from .cost import estimate_input_tokens

        return estimate_input_tokens(call.request), call.chunks
    return None, None


def _usage(u) -> tuple[int, int] | None:
    if u is None:
        return None
    tin = getattr(u, "prompt_tokens", None)
    if tin is None:
        tin = getattr(u, "input_tokens", None)
    tout = getattr(u, "completion_tokens", None)
    if tout is None:
        tout = getattr(u, "output_tokens", None)
    if tin is None and tout is None:
        return None
    return int(tin or 0), int(tout or 0)


def _learn_client(client) -> None:
    """The client's api key and auth headers: masked wherever they appear in what nbops stores."""
    from ..tracking import redact

    key = getattr(client, "api_key", None)
    if isinstance(key, str):
        redact.remember(key)
    for attr in ("_custom_headers", "auth_headers"):
        try:
            redact.learn_object(dict(getattr(client, attr, None) or {}))
        except Exception:  # noqa: BLE001 - a client without them
            pass
    _KEYS_SEEN.add(client)


def _watch(it, call: Call, session: Session):
    try:
        for item in it:
            try:
                session.chunk(call, item)
            except Exception as exc:  # noqa: BLE001 - never break the user's stream
                log.debug("nbops: a streamed piece could not be noted: %s", exc)
            yield item
    except BaseException as exc:
        session.ended(call, exc)
        raise
    session.ended(call, None)


async def _watch_async(it, call: Call, session: Session):
    try:
        async for item in it:
            try:
                session.chunk(call, item)
            except Exception as exc:  # noqa: BLE001
                log.debug("nbops: a streamed piece could not be noted: %s", exc)
            yield item
    except BaseException as exc:
        session.ended(call, exc)
        raise
    session.ended(call, None)


# -- the patch ----------------------------------------------------------------------------------------------
def _active() -> Session | None:
    return _SESSIONS[-1] if _SESSIONS else None


def _wrap(orig, kind: str, is_async: bool):
    if is_async:
        @functools.wraps(orig)
        async def wrapper(self, *args, **kwargs):
            s = _active()
            call = s.begin(self, kind, kwargs) if s is not None else None
            if call is None:
                return await orig(self, *args, **kwargs)
            try:
                result = await orig(self, *args, **kwargs)
            except BaseException as exc:
                s.failed(call, exc)
                raise
            return s.answered(call, result)
    else:
        @functools.wraps(orig)
        def wrapper(self, *args, **kwargs):
            s = _active()
            call = s.begin(self, kind, kwargs) if s is not None else None
            if call is None:
                return orig(self, *args, **kwargs)
            try:
                result = orig(self, *args, **kwargs)
            except BaseException as exc:
                s.failed(call, exc)
                raise
            return s.answered(call, result)
    wrapper.__nbops_wrapped__ = orig
    return wrapper


def _patch(_openai=None) -> None:
    """Wrap ``create`` of every target class the SDK has (called when openai is imported, or at once)."""
    with _LOCK:
        if not _SESSIONS:
            return
        for mod_name, cls_name, kind, is_async in TARGETS:
            try:
                cls = getattr(importlib.import_module(mod_name), cls_name)
            except (ImportError, AttributeError):
                continue  # an SDK version without it
            orig = cls.__dict__.get("create")
            if orig is None or hasattr(orig, "__nbops_wrapped__") or (cls, "create") in _SAVED:
                continue
            _SAVED[(cls, "create")] = orig
            cls.create = _wrap(orig, kind, is_async)


def _unpatch() -> None:
    with _LOCK:
        for (cls, name), orig in _SAVED.items():
            setattr(cls, name, orig)
        _SAVED.clear()


def start(session: Session) -> None:
    """Make ``session`` the one calls are recorded into; patch the SDK now or when the cell imports it."""
    global _HOOK
    with _LOCK:
        _SESSIONS.append(session)
    if "openai" in sys.modules:
        _patch()
    elif _HOOK is None:
        _HOOK = OnImport("openai", _patch)
        sys.meta_path.insert(0, _HOOK)


def stop(session: Session) -> None:
    """The session is over; the last one out puts the SDK back as it was."""
    global _HOOK
    with _LOCK:
        if session in _SESSIONS:
            _SESSIONS.remove(session)
        last = not _SESSIONS
    if last:
        if _HOOK is not None:
            try:
                sys.meta_path.remove(_HOOK)
            except ValueError:
                pass
            _HOOK = None
        _unpatch()
