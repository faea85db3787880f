"""`up --watch` and `local --watch`: a saved change reloads what it changed, blue/green, while
the endpoint serves.

Watched (with watchfiles): every `build:` container's folder and the pipeline file; the
`.composer` state folder, caches and editor temp files are left out. One batch of changes (an
editor's burst of saves is one) is one reload: the containers it changed start as a new set
beside the running ones (`Lifecycle.start_pipeline`; a set of one for one container), and once
each passes /ping, `Lifecycle.switch` routes the endpoint to them and stops the containers they
replace after their requests in flight, the same two steps as UpdateEndpoint. Unchanged
containers keep running. A container that fails to start leaves the old one serving, with its
last log lines printed; the next save tries again.

`local --watch` (`EndpointWatcher`) watches the build folders the control plane's endpoints run
from, with the same filter and debounce, and reloads every copy running from a changed folder
whole (operations.py's `LocalSageMaker.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchfiles import Change, DefaultFilter, awatch

from ..errors import ComposerError, SpecError
from ..runners.contract import Prepared, Runner
from ..runners.endpoint import LocalEndpoint
from ..runners.supervisor import ManagedContainer
from ..spec import load_pipeline
from ..spec.models import STATE_DIR, Pipeline
from .lifecycle import Lifecycle, RunningSet, RunningVariant
from .operations import LocalSageMaker

#: Milliseconds without a further change before a batch is handled: an editor's burst of
#: saves (write, rename, touch) is one reload.
QUIET_MS = 400
#: At most this long (milliseconds) gathering one batch while changes keep coming.
DEBOUNCE_MS = 3000
IGNORED_DIRS = (*DefaultFilter.ignore_dirs, STATE_DIR, ".ruff_cache", ".cache")

Why = Literal["code", "requirements", "pipeline"]


@dataclass
class _Part:
    """The containers one reload started, stopped together once none of them serves."""

    stack: contextlib.AsyncExitStack
    serving: set[str]


@dataclass
class _Served:
    container: ManagedContainer
    prepared: Prepared
    part: _Part | None  # None: `up`'s own first set, which `up` stops


def why_changed(paths: Iterable[Path], folders: dict[str, Path]) -> dict[str, set[Why]]:
    """Each container (hostname: its folder) a change in its folder reloads, and why: its
    requirements.txt, or its code (anything else there)."""
    reasons: dict[str, set[Why]] = {}
    for path in paths:
        for hostname, folder in folders.items():
            if path.is_relative_to(folder):
                why: Why = "requirements" if path == folder / "requirements.txt" else "code"
                reasons.setdefault(hostname, set()).add(why)
    return reasons


class Relevant(DefaultFilter):
    """watchfiles' default filter, the state folder too, and only the paths watched."""

    def __init__(self, pipeline_file: Path | None, folders: Iterable[Path]) -> None:
        """`pipeline_file`: None for `local --watch` (build folders only)."""
        super().__init__(ignore_dirs=IGNORED_DIRS)
        self.pipeline_file = pipeline_file
        self.folders = tuple(folders)

    def __call__(self, change: Change, path: str) -> bool:
        found = Path(path)
        if self.pipeline_file is not None and found == self.pipeline_file:
            return True
        return super().__call__(change, path) and any(found.is_relative_to(f) for f in self.folders)


async def _feed(
    roots: list[Path],
    recursive: bool,
    relevant: Relevant,
    batches: asyncio.Queue[set[Path]],
    ready: asyncio.Event,
) -> None:
    """Each debounced batch of relevant changes under `roots` put in `batches`; `ready` set
    once the watch is in place."""
    roots = [r for r in roots if r.is_dir()]
    if not roots:  # no folder (left): `up`'s watch of its pipeline file goes on
        ready.set()
        return
    async for changes in awatch(
        *roots,
        watch_filter=relevant,
        step=QUIET_MS,
        debounce=DEBOUNCE_MS,
        rust_timeout=1000,
        yield_on_timeout=True,  # the first (empty) batch: the watch is in place
        recursive=recursive,
    ):
        ready.set()
        if changes:
            batches.put_nowait({Path(p) for _change, p in changes})


async def _next_batch(batches: asyncio.Queue[set[Path]]) -> set[Path]:
    """The next batch, with every batch that came meanwhile (during a reload): one reload."""
    paths = await batches.get()
    while not batches.empty():
        paths |= batches.get_nowait()
    return paths


class Watcher:
    """Watches `up`'s pipeline and reloads its endpoint's containers in `lifecycle`'s registry."""

    def __init__(
        self,
        shown: str,
        endpoint: LocalEndpoint,
        lifecycle: Lifecycle,
        *,
        runner: Runner | None = None,
        startup_timeout: float | None = None,
        out: Callable[[str], None] = print,
        on_reloaded: Callable[[Pipeline], None] | None = None,
    ) -> None:
        """`shown`: the pipeline file as the user named it (errors name it so, as `validate`).
        `on_reloaded`: told the pipeline that serves once traffic switched (the control
        plane's DescribeEndpoint follows it)."""
        self.on_reloaded = on_reloaded
        self.shown = shown
        self.file = Path(shown).resolve()
        self.pipeline = endpoint.pipeline
        self.lifecycle = lifecycle
        self.runner = runner
        self.startup_timeout = startup_timeout
        self.out = out
        self.served = {
            c.hostname: _Served(c, p, None)
            for c, p in zip(endpoint.containers, endpoint.prepared, strict=True)
        }
        self._retiring: set[asyncio.Future[None]] = set()

    def folders(self) -> dict[str, Path]:
        """Each `build:` container's source folder, by hostname."""
        p = self.pipeline
        return {c.hostname: p.resolve(c.build) for c in p.containers if c.build is not None}

    async def run(self) -> None:
        """Watch until cancelled; a new set of folders (a pipeline change) is watched anew.

        The containers' folders are watched recursively, the pipeline file's folder not: the
        logs `up` writes beside the pipeline (in .composer) would keep its batches from ever
        being quiet. Changes that come while a reload runs are the next batch.
        """
        while True:
            folders = sorted(set(self.folders().values()))
            batches: asyncio.Queue[set[Path]] = asyncio.Queue()
            relevant = Relevant(self.file, folders)
            watches = [([self.file.parent], False)]
            if folders:
                watches.append((folders, True))
            started = [asyncio.Event() for _ in watches]
            feeds = [
                asyncio.create_task(_feed(roots, recursive, relevant, batches, ready))
                for (roots, recursive), ready in zip(watches, started, strict=True)
            ]
            try:
                await asyncio.gather(*(ready.wait() for ready in started))
                self.out(
                    f"sm-compose: watching {self.shown} and {len(folders)} container "
                    f"folder{'s' if len(folders) != 1 else ''} for changes"
                )
                while True:
                    if await self.changed(await _next_batch(batches)):
                        break  # the pipeline's folders changed: watch the new ones
            finally:
                for feed in feeds:
                    feed.cancel()
                await asyncio.gather(*feeds, return_exceptions=True)

    async def changed(self, paths: set[Path]) -> bool:
        """One batch of changed paths reloaded; whether the folders to watch changed."""
        reasons = why_changed(paths, self.folders())
        new = self.pipeline
        if self.file in paths:
            new = self._reread()
            old = {c.hostname: c for c in self.pipeline.containers}
            for c in new.containers:
                if c != old.get(c.hostname):
                    reasons.setdefault(c.hostname, set()).add("pipeline")
        if not reasons and new == self.pipeline:
            return False
        folders_before = self.folders()
        await self.reload(new, reasons)
        return self.folders() != folders_before

    def _reread(self) -> Pipeline:
        """The pipeline file again, if valid; else its errors printed as `validate` prints
        them, and the pipeline that serves."""
        try:
            new = load_pipeline(self.shown)
        except SpecError as exc:
            for issue in exc.issues:
                self.out(str(issue))
        except ComposerError as exc:
            self.out(f"error: {exc}")
        else:
            if new.name == self.pipeline.name:
                return new
            self.out(
                f"sm-compose: {self.shown}: name changed from {self.pipeline.name} to "
                f"{new.name}; a watched endpoint keeps its name (restart `up` to rename it)"
            )
        self.out(f"sm-compose: {self.shown} not applied; the endpoint serves as before")
        return self.pipeline

    async def reload(self, new: Pipeline, reasons: dict[str, set[Why]]) -> None:
        """Start the containers of `new` named in `reasons` beside the running ones, then switch
        to `new` (containers gone from it stop); a failed start changes nothing."""
        began = time.monotonic()
        hostnames = [c.hostname for c in new.containers]
        start = [h for h in hostnames if h in reasons]
        said = [
            f"{h} ({'+'.join(sorted(reasons[h])) if h in self.served else 'pipeline: added'})"
            for h in start
        ]
        said += [f"{h} (pipeline: removed)" for h in self.served if h not in hostnames]
        what = ", ".join(said) or "endpoint settings (pipeline)"
        stack = contextlib.AsyncExitStack()
        fresh: dict[str, _Served] = {}
        if start:
            try:
                started = await self.lifecycle.start_pipeline(
                    new.part(start, self.lifecycle.folder(new.name)),
                    stack,
                    runner=self.runner,
                    progress=self.out,
                    startup_timeout=self.startup_timeout,
                )
            except Exception as exc:  # a ComposerError says what failed; anything else is ours
                await stack.aclose()
                self.out(
                    f"sm-compose: reload of {what} failed; what ran before keeps serving "
                    f"(save again to retry): {exc}"
                )
                return
            part = _Part(stack, set(start))
            fresh = {
                c.hostname: _Served(c, p, part)
                for c, p in zip(started.containers, started.prepared, strict=True)
            }
        served = {h: fresh.get(h) or self.served[h] for h in hostnames}
        composed = LocalEndpoint(
            new,
            [served[h].container for h in hostnames],
            "",
            [served[h].prepared for h in hostnames],
        )
        variant = {"VariantName": new.endpoint.variant_name}
        running = RunningSet(new.name, [RunningVariant(variant, [], [composed])], stack)
        retired = contextlib.AsyncExitStack()
        for hostname, was in self.served.items():
            if served.get(hostname) is not was:
                retired.push_async_callback(self._retire, hostname, was)

        def switched() -> None:
            self.pipeline, self.served = new, served
            took = time.monotonic() - began
            self.out(f"sm-compose: reloaded {what}: traffic switched after {took:.1f}s")
            if self.on_reloaded is not None:
                self.on_reloaded(new)

        await self.lifecycle.switch(new.name, running, RunningSet(new.name, [], retired), switched)

    async def _retire(self, hostname: str, was: _Served) -> None:
        """Stop a replaced container (and the reload's set, once it serves nothing); finished
        even if `up` stops meanwhile (`aclose` waits for it)."""
        if was.part is None:
            stopping = was.container.stop()  # `up`'s own set: the rest of it runs on
        else:
            was.part.serving.discard(hostname)
            stopping = was.part.stack.aclose() if not was.part.serving else was.container.stop()
        task = asyncio.ensure_future(stopping)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop the containers reloads started (once the gateway has stopped)."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        parts = {id(s.part): s.part for s in self.served.values() if s.part is not None}
        for part in parts.values():
            await part.stack.aclose()


class EndpointWatcher:
    """`local --watch`: the build folders the control plane's endpoints run from, watched as
    `up --watch` watches a pipeline's; a change reloads every copy that runs a container from
    the folder (operations.py's `reload`: the whole copy, beside the running one, switched once
    it passes /ping). The folders follow the control plane: an endpoint that goes InService is
    watched from then on, a deleted one no more. `up --watch` runs one too, for the endpoints
    created beside its own (`quiet`: it says nothing while there are none)."""

    def __init__(
        self, control: LocalSageMaker, out: Callable[[str], None] = print, *, quiet: bool = False
    ) -> None:
        self.control = control
        self.out = out
        self.quiet = quiet
        self._batches: asyncio.Queue[set[Path]] = asyncio.Queue()
        # An empty batch: the control plane's endpoints changed (see which folders to watch).
        control.on_change = lambda: self._batches.put_nowait(set())

    def folders(self) -> list[Path]:
        return sorted(
            {f for _e, _v, found in self.control.built_variants() for f in found.values()}
        )

    async def run(self) -> None:
        """Watch until cancelled; a new set of folders is watched anew. Changes that come
        while a reload runs are the next batch."""
        while True:
            folders = self.folders()
            relevant = Relevant(None, folders)
            ready = asyncio.Event()
            feed = asyncio.create_task(_feed(folders, True, relevant, self._batches, ready))
            try:
                await ready.wait()
                self._say_watching(folders)
                while True:
                    paths = await _next_batch(self._batches)
                    if paths:
                        await self.changed(paths)
                    if self.folders() != folders:
                        break
            finally:
                feed.cancel()
                await asyncio.gather(feed, return_exceptions=True)

    def _say_watching(self, folders: list[Path]) -> None:
        if not folders:
            if self.quiet:
                return
            self.out(
                "sm-compose: watching no build folders yet: an endpoint whose containers run "
                "from build folders is watched once it is InService"
            )
            return
        endpoints = sorted({e for e, _v, _found in self.control.built_variants()})
        self.out(
            f"sm-compose: watching {len(folders)} build folder{'s' if len(folders) != 1 else ''} "
            f"(endpoint{'s' if len(endpoints) != 1 else ''} {', '.join(endpoints)}) for changes"
        )

    async def changed(self, paths: set[Path]) -> None:
        """One batch of changed paths: each endpoint running a container from one of them
        reloaded (the endpoints at once)."""
        began = time.monotonic()
        reasons: dict[str, dict[str, dict[str, set[str]]]] = {}
        for endpoint, variant, folders in self.control.built_variants():
            found = why_changed(paths, folders)
            if found:
                reasons.setdefault(endpoint, {})[variant] = {h: set(w) for h, w in found.items()}
        await asyncio.gather(
            *(self.control.reload(name, why, began) for name, why in reasons.items())
        )
