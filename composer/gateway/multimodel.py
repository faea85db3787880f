"""What SageMaker does in front of a multi-model container, done by the gateway.

On an invocation with TargetModel, SageMaker makes sure the container has that model: it
fetches `<ModelDataUrl prefix><TargetModel>`, extracts it, asks the container to load it
(`POST /models`), unloads the least recently used models when the container answers 507, and
then sends the request to `POST /models/<name>/invoke`. The model name it gives the container is
opaque; here it is a digest of the TargetModel, so any TargetModel makes a safe URL path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from typing import Protocol

from .upstream import Answer, UpstreamPool

H_TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
_ADMIN_LIMIT = 1 << 20


class ModelSourceError(Exception):
    """The TargetModel cannot be fetched; `missing` when there is no such object at all."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


class ModelSource(Protocol):
    """Where a multi-model container's models come from (the runner fetches and extracts).

    `prepare` returns the folder the container loads from, as the container sees it (SageMaker:
    /opt/ml/models/<name>/model); `release` forgets an unloaded model's folder.
    """

    async def prepare(self, target_model: str, name: str) -> str: ...

    def release(self, name: str) -> None: ...


class LoadFailed(Exception):
    """The container refused or failed to load the model: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def model_name(target_model: str) -> str:
    """The opaque model name the container keeps the model under."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


class MultiModelRouter:
    """The models one multi-model container holds, in least-recently-used order."""

    def __init__(self, pool: UpstreamPool, source: ModelSource, load_timeout: float) -> None:
        self.pool = pool
        self.source = source
        self.load_timeout = load_timeout
        self.loaded: OrderedDict[str, str] = OrderedDict()  # name -> TargetModel, LRU first
        self._locks: dict[str, asyncio.Lock] = {}

    async def invoke(
        self, target_model: str, body: bytes, headers: dict[str, str], limit: int, timeout: float
    ) -> Answer:
        """The container's answer, loading the model first when needed.

        Loading has its own time (`load_timeout`); the invocation itself gets `timeout`.
        """
        name = model_name(target_model)
        path = f"/models/{name}/invoke".encode()
        sent = {**headers, H_TARGET_MODEL: target_model}
        for attempt in (1, 2):
            if name not in self.loaded:
                await self._load(target_model, name)
            async with asyncio.timeout(timeout):
                answer = await self.pool.send("POST", path, body, sent, limit)
            if answer.status == 404 and attempt == 1:
                # the container lost it (restarted, or evicted by its own budget): load again
                self._forget(name)
                continue
            if name in self.loaded:
                self.loaded.move_to_end(name)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _load(self, target_model: str, name: str) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self.loaded:
                return
            folder = await self.source.prepare(target_model, name)
            request = json.dumps({"model_name": name, "url": folder}).encode()
            headers = {"Content-Type": "application/json", H_TARGET_MODEL: target_model}
            while True:
                async with asyncio.timeout(self.load_timeout):
                    answer = await self.pool.send(
                        "POST", b"/models", request, headers, _ADMIN_LIMIT
                    )
                if answer.status in (200, 409):  # 409: loaded already (another caller won)
                    self.loaded[name] = target_model
                    return
                if answer.status == 507 and await self._evict_one(keep=name):
                    continue  # as SageMaker does: unload the least recently used, try again
                self.source.release(name)
                raise LoadFailed(answer.status, _text(answer))

    async def _evict_one(self, keep: str) -> bool:
        for victim in self.loaded:
            if victim == keep:
                continue
            answer = await self.pool.send(
                "DELETE", f"/models/{victim}".encode(), b"", {}, _ADMIN_LIMIT
            )
            if answer.status not in (200, 404):
                raise LoadFailed(answer.status, _text(answer))
            self._forget(victim)
            return True
        return False

    def _forget(self, name: str) -> None:
        if self.loaded.pop(name, None) is not None:
            self.source.release(name)


def _text(answer: Answer) -> str:
    return (answer.body or b"").decode("utf-8", "replace")
