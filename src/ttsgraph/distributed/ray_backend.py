"""A `Backend` whose calls run on Ray actors: how `--executor ray` spreads a run over a cluster.

Why a backend and not a whole-job evaluator: the driver must stay the only reader and writer of
the response cache and must serve hits before anything is dispatched. A node's request is known
only once its predecessors have answered, so the cache can only be consulted node by node; the
driver therefore walks each job's DAG itself (the ordinary `Executor`, with its sample indices and
its sharing of identical in-flight requests) and hands each cache miss to the least-loaded actor.
Everything that decides a result — requests, sample indices, the cache, grading (math-verify's
`signal.alarm` needs the driver's main thread) — is the local code path; only the model calls move.

An actor that dies takes only its in-flight calls with it: each is sent again to another live
actor (calls are idempotent: seeds come from the request and the sample index), and the cache and
every counter are updated once, by the driver, when the answer arrives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsgraph.distributed.worker import ModelWorker, decode_reply
from ttsgraph.errors import BackendError, TtsGraphError
from ttsgraph.llm.base import BackendBase, Completion, Message, SamplingParams
from ttsgraph.models import ModelPool

DISTRIBUTED_EXTRA = "--executor ray needs the 'distributed' extra: pip install 'ttsgraph[distributed]'"
NAMESPACE = "ttsgraph"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray 2.60 replaces a loopback node address by the machine's network address unless this is
"0"; set for loopback addresses so a one-machine cluster stays on 127.0.0.1."""


def is_loopback(address: str | None) -> bool:
    """Whether a Ray address (None: start Ray here; "auto"; HOST:PORT) stays on this machine's
    loopback interface."""
    if address is None:
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(address: str | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Join the Ray cluster at `address` ("auto": the one `ray start` runs on this machine;
    HOST:PORT; None: `$RAY_ADDRESS`, else a fresh single-node Ray with no dashboard) as a job
    with `runtime_env`. Returns whether this call initialized Ray (and so must shut it down);
    a process that joined Ray already keeps its own job settings."""
    if is_loopback(address):
        if "ray" not in sys.modules:
            os.environ.setdefault(LOOPBACK_ENV, "0")  # read by Ray at import: set before importing it
        elif os.environ.get(LOOPBACK_ENV) != "0":
            raise TtsGraphError(f"--ray-address {address or 'local'}: Ray was imported before ttsgraph could keep "
                                f"it on loopback; set {LOOPBACK_ENV}=0 before importing ray")
    try:
        import ray
    except ImportError:
        raise TtsGraphError(DISTRIBUTED_EXTRA) from None
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _reachable(address)
    options: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": logging.WARNING,
                               "log_to_driver": False, "runtime_env": runtime_env or {}}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TtsGraphError(f"--ray-address {where}: cannot join the Ray cluster ({first})") from None
    return True


def _reachable(address: str) -> None:
    """Fail in seconds, with one line, on a cluster address nothing listens on (Ray itself keeps
    retrying for minutes)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except ValueError:
        raise TtsGraphError(f"--ray-address {address!r}: expected auto or HOST:PORT") from None
    except OSError as exc:
        raise TtsGraphError(f"--ray-address {address}: no Ray head answers there ({exc.strerror or exc})") from None


@dataclass
class _Slot:
    """One actor as the dispatcher sees it."""

    name: str
    handle: Any
    busy: int = 0
    alive: bool = True


class RayBackend(BackendBase):
    """Sends each call to the least-loaded live actor; an actor that dies has its calls retried on
    the others. `actors` (default: one per alive node) each serve at most `concurrency` calls at
    once. `retried` counts calls moved off a dead actor."""

    def __init__(self, pool: ModelPool, *, address: str | None, actors: int | None = None,
                 concurrency: int = 4, timeout: float = 600.0, retries: int = 3) -> None:
        self._owns_ray = connect(address, job_env(pool))
        import ray

        self._ray = ray
        embedded = any(spec.binding is not None and spec.binding.kind == "local" for spec in pool.specs.values())
        count = actors or max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
        self.tag = uuid.uuid4().hex[:8]
        options = dict(
            # an embedded model computes on the actor's host: one CPU each, spread over the nodes;
            # an HTTP actor only waits on its endpoints
            num_cpus=1 if embedded else 0, scheduling_strategy="SPREAD", max_concurrency=concurrency,
            max_restarts=0, namespace=NAMESPACE)
        worker = ray.remote(ModelWorker)
        self.slots = [_Slot(f"ttsgraph-{self.tag}-{i}", None) for i in range(count)]
        for i, slot in enumerate(self.slots):
            slot.handle = worker.options(name=slot.name, **options).remote(pool, timeout=timeout, retries=retries,
                                                                           share=(i, count))
        self.retried = 0

    @property
    def actors(self) -> int:
        """How many actors are still alive."""
        return sum(1 for s in self.slots if s.alive)

    async def start(self) -> None:
        """Wait until every actor is up, so an impossible placement fails before any item runs."""
        try:
            await asyncio.wait_for(asyncio.gather(*(s.handle.ready.remote() for s in self.slots)), 300)
        except asyncio.TimeoutError:
            raise TtsGraphError(f"Ray could not place {len(self.slots)} actor(s) within 300 s: the cluster "
                                f"lacks the CPUs (give --ray-actors fewer)") from None

    def _pick(self) -> _Slot | None:
        live = [s for s in self.slots if s.alive]
        return min(live, key=lambda s: s.busy) if live else None

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        exceptions = self._ray.exceptions
        lost = (exceptions.RayActorError, exceptions.ActorUnavailableError, exceptions.WorkerCrashedError,
                exceptions.ObjectLostError)
        last = "no actor was started"
        while (slot := self._pick()) is not None:
            slot.busy += 1
            try:
                reply = await slot.handle.complete.remote(model, messages, params.to_dict(), sample)
            except lost as exc:
                slot.alive = False
                self.retried += 1
                last = f"actor {slot.name} died: {type(exc).__name__}"
                continue
            except exceptions.RayTaskError as exc:
                raise BackendError(f"on Ray actor {slot.name}: {exc.cause!r}", model=model) from None
            finally:
                slot.busy -= 1
            return decode_reply(model, reply)
        raise BackendError(f"every Ray actor is gone ({last})", model=model)

    async def aclose(self) -> None:
        """Stop this run's actors (and Ray itself when this process started it)."""
        for slot in self.slots:
            if slot.alive:
                try:
                    self._ray.kill(slot.handle)
                except Exception:  # noqa: BLE001 - an actor already gone needs no stopping
                    pass
        if self._owns_ray:
            self._ray.shutdown()


def job_env(pool: ModelPool) -> dict[str, Any]:
    """What every actor of the run gets from the driver: this very ttsgraph package (so driver and actors run
    the same code) and the API keys the pool's HTTP bindings name, when the driver has them."""
    import ttsgraph

    keys = {spec.binding.api_key_env for spec in pool.specs.values()
            if spec.binding is not None and spec.binding.api_key_env}
    env = {key: os.environ[key] for key in sorted(keys) if os.environ.get(key)}
    package = str(Path(ttsgraph.__file__).resolve().parent)
    return {"py_modules": [package], "excludes": ["__pycache__"], **({"env_vars": env} if env else {})}


__all__ = ["RayBackend", "connect", "is_loopback", "DISTRIBUTED_EXTRA"]
