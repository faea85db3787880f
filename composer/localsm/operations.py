"""The emulated operations: SageMaker's models, endpoint configs, endpoints, transform jobs
(transforms.py) and tags, in memory.

`LocalSageMaker` is the `ControlPlane` the gateway hands `POST /` to (gateway/control.py): each
operation's input is checked against botocore's shape (shapes.py), then answered with the
members botocore's output shape requires. Endpoints start in the background (lifecycle.py);
CreateEndpoint answers once its endpoint is InService, or after `create_wait` seconds, whichever
comes first, because boto3's waiter only polls every 30 s. State lives as long as the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..gateway.control import error_document
from ..render.builds import BuiltFrom
from ..runners.endpoint import LocalEndpoint
from ..sagemaker_facts import DEFAULT_REGION
from ..spec.rules import MAX_TAGS
from .errors import ApiError, already_exists, not_found
from .lifecycle import (
    MAX_LOCAL_INSTANCES,
    Lifecycle,
    RunningSet,
    RunningVariant,
    failure_reason,
    instance_count,
)
from .pipelines import ModelPlan, pipeline_for, plan_model
from .shapes import input_errors, validation_message
from .transforms import TransformJobs

#: Seconds CreateEndpoint waits for InService before it answers (the endpoint goes on starting).
CREATE_WAIT = 10.0
ACCOUNT_ID = "000000000000"
_Document = dict[str, Any]
_Operation = Callable[[_Document], Awaitable[_Document]]
T = TypeVar("T")


@dataclass
class _Model:
    name: str
    arn: str
    created: float
    document: _Document
    plan: ModelPlan


@dataclass
class _Config:
    name: str
    arn: str
    created: float
    document: _Document


@dataclass
class _Endpoint:
    name: str
    arn: str
    config_name: str
    created: float
    modified: float
    status: str = "Creating"
    failure_reason: str | None = None
    running: RunningSet | None = None
    task: asyncio.Task[None] | None = None
    deleted: bool = False

    def settle(self, failure: BaseException | None = None, status: str = "InService") -> None:
        """The end of a change (create, update, count, reload): its status, FailureReason from
        `failure` (cleared without one), LastModifiedTime now."""
        self.status = status
        self.failure_reason = failure_reason(failure) if failure is not None else None
        self.modified = time.time()


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


class LocalSageMaker:
    """SageMaker's control plane for endpoints on this machine."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        create_wait: float = CREATE_WAIT,
        known_images: Mapping[str, BuiltFrom] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.create_wait = create_wait
        #: Image references lock files map to build folders (`local --pipeline`, `up`'s own).
        self.known_images = dict(known_images or {})
        self.region = _region()
        lifecycle.region = self.region
        self.account_id = ACCOUNT_ID
        self._models: dict[str, _Model] = {}
        self._configs: dict[str, _Config] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._background: set[asyncio.Task[None]] = set()
        #: Told when an endpoint goes InService on new containers, or is deleted (`local
        #: --watch` follows which build folders run).
        self.on_change: Callable[[], None] | None = None
        self._table: dict[str, _Operation] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "ListModels": self.list_models,
            "DeleteModel": self.delete_model,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_weights_and_capacities,
            "DeleteEndpoint": self.delete_endpoint,
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "StopTransformJob": self.stop_transform_job,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }
        self._operations = frozenset(self._table)
        self._tags: dict[str, dict[str, str]] = {}  # ARN -> key -> value, in order given
        self.transforms = TransformJobs(
            root=lifecycle.root,
            model_plan=lambda name: self._model(name).plan,
            arn=self._arn,
            runner_for=lifecycle.runner_for,
            spawn=self._spawn,
            out=lifecycle.out,
        )

    # --- the ControlPlane protocol ------------------------------------------------------------

    @property
    def operations(self) -> frozenset[str]:
        return self._operations

    async def call(self, operation: str, document: _Document) -> tuple[int, _Document]:
        errors = input_errors(operation, document)
        try:
            if errors:
                raise ApiError(validation_message(errors))
            return 200, await self._table[operation](document)
        except ApiError as exc:
            return exc.status, error_document(exc.code, exc.message)

    async def aclose(self) -> None:
        """Stop every endpoint's containers and transform jobs: nothing is left running.

        Called once the gateway has stopped (so requests in flight were answered).
        """
        for endpoint in list(self._endpoints.values()):
            self._forget(endpoint)
        await self.transforms.aclose()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def adopt(self, requests: _Document, endpoint: LocalEndpoint) -> None:
        """An endpoint started elsewhere (`up`'s) made visible: its model and endpoint config
        created through the operations a client would call, the endpoint InService on them.

        `requests`: the CreateModel, CreateEndpointConfig and CreateEndpoint documents.
        """
        for operation, key in (("CreateModel", "model"), ("CreateEndpointConfig", "config")):
            status, answer = await self.call(operation, requests[key])
            if status != 200:
                raise ApiError(f"{operation}: {answer.get('message')}")
        config = self._config(requests["config"]["EndpointConfigName"])
        ((plan, variant, images),) = self._deployable(config)
        name = requests["endpoint"]["EndpointName"]
        now = time.time()
        adopted = _Endpoint(name, self._arn("endpoint", name), config.name, now, now)
        adopted.status = "InService"
        # The containers are the caller's: stopping this set stops nothing.
        adopted.running = RunningSet(
            config.name,
            [RunningVariant(variant, images, [endpoint], plan=plan)],
            contextlib.AsyncExitStack(),
            async_config=config.document.get("AsyncInferenceConfig"),
        )
        self._endpoints[name] = adopted
        self.lifecycle.unscoped.add(name)  # its lines as `up` prints them: no endpoint name

    def reloaded(self, name: str, images: list[str] | None = None) -> None:
        """`up --watch` reloaded the endpoint's containers: LastModifiedTime moves, and
        DeployedImages list `images` (if given), resolved now."""
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            return
        endpoint.modified = time.time()
        running = endpoint.running
        if running is not None:
            running.started = endpoint.modified
            if images is not None and len(running.variants) == 1:
                running.variants[0].images = images

    # --- models ---------------------------------------------------------------------------------

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    async def create_model(self, document: _Document) -> _Document:
        name = document["ModelName"]
        arn = self._arn("model", name)
        if name in self._models:
            raise already_exists("model", arn)
        plan = await asyncio.get_running_loop().run_in_executor(
            None, plan_model, document, self.lifecycle.root / "models" / name, self.known_images
        )
        stored = {k: v for k, v in document.items() if k != "Tags"}
        self._models[name] = _Model(name, arn, time.time(), stored, plan)
        self._tag(arn, document.get("Tags"))
        return {"ModelArn": arn}

    def _model(self, name: str) -> _Model:
        found = self._models.get(name)
        if found is None:
            raise not_found("model", name)
        return found

    async def describe_model(self, document: _Document) -> _Document:
        model = self._model(document["ModelName"])
        out = {**model.document, "ModelArn": model.arn, "CreationTime": model.created}
        if "Containers" in out:
            out.setdefault("InferenceExecutionConfig", {"Mode": model.plan.mode})
        out.setdefault("EnableNetworkIsolation", False)
        return out

    async def list_models(self, document: _Document) -> _Document:
        page, token = _page(document, self._models.values(), lambda m: (m.name, m.created))
        models = [{"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.created} for m in page]
        return {"Models": models, **token}

    async def delete_model(self, document: _Document) -> _Document:
        name = document["ModelName"]
        self._tags.pop(self._model(name).arn, None)
        del self._models[name]
        return {}

    # --- endpoint configs -------------------------------------------------------------------

    async def create_endpoint_config(self, document: _Document) -> _Document:
        name = document["EndpointConfigName"]
        arn = self._arn("endpoint-config", name)
        if name in self._configs:
            raise already_exists("endpoint configuration", arn)
        variants = document["ProductionVariants"]
        names = [v["VariantName"] for v in variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ApiError(f"ProductionVariants: got variant {twice[0]} twice; names are unique")
        for index, variant in enumerate(variants):
            model_name = variant.get("ModelName")
            if model_name is None:
                raise ApiError(f"ProductionVariants[{index}].ModelName: got none; give a model")
            if model_name not in self._models:
                raise ApiError(f'Could not find model "{self._arn("model", model_name)}".')
            plan = self._models[model_name].plan
            pipeline_for(
                plan,
                name,
                variant,
                self.lifecycle.root / "configs" / name,
                document.get("AsyncInferenceConfig"),
            )  # the rule book, on the variant's fields too
        stored = {k: v for k, v in document.items() if k != "Tags"}
        self._configs[name] = _Config(name, arn, time.time(), stored)
        self._tag(arn, document.get("Tags"))
        return {"EndpointConfigArn": arn}

    def _config(self, name: str) -> _Config:
        found = self._configs.get(name)
        if found is None:
            raise not_found("endpoint configuration", name)
        return found

    async def describe_endpoint_config(self, document: _Document) -> _Document:
        config = self._config(document["EndpointConfigName"])
        return {
            **config.document,
            "EndpointConfigArn": config.arn,
            "CreationTime": config.created,
        }

    async def list_endpoint_configs(self, document: _Document) -> _Document:
        page, token = _page(document, self._configs.values(), lambda c: (c.name, c.created))
        configs = [
            {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.created}
            for c in page
        ]
        return {"EndpointConfigs": configs, **token}

    async def delete_endpoint_config(self, document: _Document) -> _Document:
        name = document["EndpointConfigName"]
        self._tags.pop(self._config(name).arn, None)
        del self._configs[name]
        return {}

    # --- endpoints --------------------------------------------------------------------------

    def _deployable(
        self, config: _Config, runs: bool = False
    ) -> list[tuple[ModelPlan, _Document, list[str]]]:
        """Each of the config's variants with its model's plan and images; ApiError if one
        cannot run (`runs`: its instances here, as CreateEndpoint and UpdateEndpoint start
        them; `up`'s adopted endpoint runs one copy whatever its count)."""
        out = []
        for index, variant in enumerate(config.document["ProductionVariants"]):
            if runs:
                _check_count(
                    f"endpoint configuration {config.name}: ProductionVariants[{index}]."
                    "InitialInstanceCount",
                    variant,
                )
            model = self._models.get(variant["ModelName"])
            if model is None:
                raise not_found("model", variant["ModelName"])
            definitions = model.document.get("Containers") or [model.document["PrimaryContainer"]]
            out.append((model.plan, variant, [d["Image"] for d in definitions]))
        return out

    async def create_endpoint(self, document: _Document) -> _Document:
        name = document["EndpointName"]
        arn = self._arn("endpoint", name)
        if name in self._endpoints:
            raise already_exists("endpoint", arn)
        config = self._config(document["EndpointConfigName"])
        variants = self._deployable(config, runs=True)
        now = time.time()
        endpoint = _Endpoint(name, arn, config.name, now, now)
        self._tag(arn, document.get("Tags"))
        self._endpoints[name] = endpoint
        endpoint.task = self._spawn(self._deploy(endpoint, config, variants))
        await asyncio.wait({endpoint.task}, timeout=self.create_wait)
        return {"EndpointArn": arn}

    async def update_endpoint(self, document: _Document) -> _Document:
        endpoint = self._endpoint(document["EndpointName"])
        if endpoint.status != "InService":
            raise ApiError(
                f'Cannot update endpoint "{endpoint.arn}" while it is {endpoint.status}; '
                "wait until it is InService"
            )
        config = self._config(document["EndpointConfigName"])
        variants = self._deployable(config, runs=True)
        endpoint.status = "Updating"
        endpoint.modified = time.time()
        endpoint.task = self._spawn(self._deploy(endpoint, config, variants))
        return {"EndpointArn": endpoint.arn}

    async def update_weights_and_capacities(self, document: _Document) -> _Document:
        """Variants' weights, live (the gateway's split switches at once, over the same copies);
        instance counts by starting or stopping only the copies added or removed."""
        endpoint = self._endpoint(document["EndpointName"])
        running = endpoint.running
        if endpoint.status != "InService" or running is None:
            raise ApiError(
                f'Cannot update endpoint "{endpoint.arn}" while it is {endpoint.status}; wait '
                "until it is InService"
            )
        by_name = {v.name: v for v in running.variants}
        for desired in document["DesiredWeightsAndCapacities"]:
            if desired["VariantName"] not in by_name:
                raise ApiError(
                    f"DesiredWeightsAndCapacities: got variant {desired['VariantName']}; endpoint "
                    f"{endpoint.name} has {', '.join(by_name)}"
                )
            count = desired.get("DesiredInstanceCount")
            if count is not None:
                _check_count("DesiredInstanceCount", {"InitialInstanceCount": count})
        recount: list[tuple[RunningVariant, int]] = []
        for desired in document["DesiredWeightsAndCapacities"]:
            found = by_name[desired["VariantName"]]
            if desired.get("DesiredWeight") is not None:
                found.variant = {**found.variant, "InitialVariantWeight": desired["DesiredWeight"]}
            count = desired.get("DesiredInstanceCount")
            if count is not None and count != len(found.instances):
                found.variant = {**found.variant, "InitialInstanceCount": count}
                recount.append((found, count))
        endpoint.modified = time.time()
        if recount:  # the added copies start beside the running ones, or the removed ones stop
            endpoint.status = "Updating"
            endpoint.task = self._spawn(self._recount(endpoint, running, recount))
        elif len(running.variants) > 1:
            self.lifecycle.serve(endpoint.name, running)  # the new split; the same copies
        return {"EndpointArn": endpoint.arn}

    async def _recount(
        self, endpoint: _Endpoint, running: RunningSet, changes: list[tuple[RunningVariant, int]]
    ) -> None:
        """New instance counts: only the added copies start (each passes /ping), then they are
        served beside the kept ones; removed copies are served no more, then stop. The kept
        copies run on, their sessions open. A failed start stops what it started and leaves the
        endpoint as it was, InService with FailureReason set."""
        lifecycle = self.lifecycle
        added: list[tuple[RunningVariant, list[LocalEndpoint]]] = []
        try:
            for variant, count in changes:
                more = count - len(variant.instances)
                if more > 0 and variant.plan is not None:
                    copies = await lifecycle.add_copies(
                        endpoint.name,
                        running,
                        variant,
                        variant.plan,
                        more,
                        running.async_config,
                        several=len(running.variants) > 1,
                    )
                    added.append((variant, copies))
        except Exception as exc:  # a ComposerError says what failed; anything else is ours
            for variant, copies in added:
                await lifecycle.stop_copies(variant, copies)
            for variant, _count in changes:
                kept = len(variant.instances)
                variant.variant = {**variant.variant, "InitialInstanceCount": kept}
            if not endpoint.deleted:
                lifecycle.serve(endpoint.name, running)  # the same copies; new weights, if any
            endpoint.settle(exc)
            lifecycle.out(f"sm-compose: endpoint {endpoint.name}: new instance count failed: {exc}")
            return
        if endpoint.deleted:
            return  # its teardown stops the whole set, added copies too
        removed: list[tuple[RunningVariant, list[LocalEndpoint]]] = []
        for variant, count in changes:
            if count < len(variant.instances):
                removed.append((variant, variant.instances[count:]))
                variant.instances = variant.instances[:count]
        lifecycle.serve(endpoint.name, running)
        endpoint.settle()
        counts = ", ".join(f"{v.name} {len(v.instances)}" for v, _count in changes)
        lifecycle.out(f"sm-compose: endpoint {endpoint.name} InService (instances: {counts})")
        for variant, copies in removed:
            await lifecycle.stop_copies(variant, copies)

    async def _deploy(
        self,
        endpoint: _Endpoint,
        config: _Config,
        variants: list[tuple[ModelPlan, _Document, list[str]]],
    ) -> None:
        """Start the config's set; switch to it once every container passes /ping.

        A failed start leaves what served (an update's old set) serving, with FailureReason.
        """
        out = self.lifecycle.out
        try:
            running = await self.lifecycle.start(
                endpoint.name,
                config.name,
                variants,
                config.document.get("AsyncInferenceConfig"),
            )
        except Exception as exc:  # a ComposerError says what failed; anything else is ours
            endpoint.settle(exc, "InService" if endpoint.running is not None else "Failed")
            out(f"sm-compose: endpoint {endpoint.name}: {config.name} failed: {exc}")
            return
        if endpoint.deleted:
            await running.stop()
            return
        old, endpoint.running = endpoint.running, running

        def switched() -> None:
            endpoint.config_name = config.name
            endpoint.settle()
            out(f"sm-compose: endpoint {endpoint.name} InService ({config.name})")
            self._changed()

        await self.lifecycle.switch(endpoint.name, running, old, switched)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # --- `local --watch`: reloads of endpoints whose containers run from build folders ---------

    def built_variants(self) -> list[tuple[str, str, dict[str, Path]]]:
        """(endpoint, variant, hostname -> build folder) of each running variant whose
        containers run from build folders (build records, lock files), for `local --watch`."""
        found = []
        for endpoint in self._endpoints.values():
            running = endpoint.running
            if running is None or endpoint.deleted or endpoint.name in self.lifecycle.unscoped:
                continue  # `up`'s own endpoint is `up --watch`'s
            for v in running.variants:
                containers = v.plan.containers if v.plan is not None else ()
                folders = {c["hostname"]: Path(c["build"]) for c in containers if "build" in c}
                if folders:
                    found.append((endpoint.name, v.name, folders))
        return found

    async def reload(
        self, name: str, reasons: Mapping[str, Mapping[str, set[str]]], began: float
    ) -> None:
        """Every copy of the endpoint's variants in `reasons` (variant -> hostname -> why)
        started anew beside the running one (the whole copy, each of its containers rendered
        again from its build folder), switched to once every container passes /ping; the old
        copies stop after their requests in flight. While it runs the endpoint is Updating (so
        no UpdateEndpoint races it); a failed start keeps the old copies serving, back
        InService with FailureReason set. `began`: when the change was seen (monotonic)."""
        endpoint = self._endpoints.get(name)
        while endpoint is not None and endpoint.task is not None and not endpoint.task.done():
            await asyncio.wait({endpoint.task})  # an update first; then its containers
        if endpoint is None or endpoint.deleted or endpoint.status != "InService":
            return
        running = endpoint.running
        if running is None:
            return
        endpoint.status = "Updating"
        endpoint.modified = time.time()
        endpoint.task = self._spawn(self._reload(endpoint, running, reasons, began))
        await asyncio.wait({endpoint.task})

    async def _reload(
        self,
        endpoint: _Endpoint,
        running: RunningSet,
        reasons: Mapping[str, Mapping[str, set[str]]],
        began: float,
    ) -> None:
        lifecycle = self.lifecycle
        whys: dict[str, set[str]] = {}
        for hostnames in reasons.values():
            for hostname, why in hostnames.items():
                whys.setdefault(hostname, set()).update(why)
        what = ", ".join(f"{endpoint.name}/{h} ({'+'.join(sorted(w))})" for h, w in whys.items())
        chosen = [v for v in running.variants if v.name in reasons and v.plan is not None]
        replaced: list[tuple[RunningVariant, list[LocalEndpoint], list[LocalEndpoint]]] = []
        try:
            for variant in chosen:
                assert variant.plan is not None
                old = list(variant.instances)
                copies = await lifecycle.add_copies(
                    endpoint.name,
                    running,
                    variant,
                    variant.plan,
                    len(old),
                    running.async_config,
                    several=len(running.variants) > 1,
                    progress=lifecycle.out,
                )
                replaced.append((variant, old, copies))
        except Exception as exc:  # a ComposerError says what failed; anything else is ours
            for variant, _old, copies in replaced:
                await lifecycle.stop_copies(variant, copies)
            endpoint.settle(exc)
            lifecycle.out(
                f"sm-compose: reload of {what} failed; what ran before keeps serving (save "
                f"again to retry): {exc}"
            )
            return
        if endpoint.deleted:
            return  # its teardown stops the whole set, the new copies too
        retired = contextlib.AsyncExitStack()
        for variant, old, _new in replaced:
            gone = {id(e) for e in old}
            variant.instances = [e for e in variant.instances if id(e) not in gone]
            retired.push_async_callback(lifecycle.stop_copies, variant, old)
        count = sum(len(old) for _variant, old, _new in replaced)
        several = f" ({count} copies)" if count > 1 else ""

        def switched() -> None:
            endpoint.settle()
            running.started = endpoint.modified
            took = time.monotonic() - began
            lifecycle.out(
                f"sm-compose: reloaded {what}: traffic switched after {took:.1f}s{several}"
            )

        old_set = RunningSet(running.config_name, [], retired)
        await lifecycle.switch(endpoint.name, running, old_set, switched)

    def _endpoint(self, name: str) -> _Endpoint:
        found = self._endpoints.get(name)
        if found is None:
            raise not_found("endpoint", name)
        return found

    async def describe_endpoint(self, document: _Document) -> _Document:
        endpoint = self._endpoint(document["EndpointName"])
        out: _Document = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created,
            "LastModifiedTime": endpoint.modified,
        }
        if endpoint.failure_reason:
            out["FailureReason"] = endpoint.failure_reason
        running = endpoint.running
        if running is not None:
            out["ProductionVariants"] = [
                {
                    "VariantName": v.name,
                    "DeployedImages": [
                        {
                            "SpecifiedImage": image,
                            "ResolvedImage": image,
                            "ResolutionTime": running.started,
                        }
                        for image in v.images
                    ],
                    "CurrentWeight": v.weight,
                    "DesiredWeight": v.weight,
                    "CurrentInstanceCount": len(v.instances),
                    "DesiredInstanceCount": instance_count(v.variant),
                }
                for v in running.variants
            ]
        config = self._configs.get(endpoint.config_name)
        if config is not None and "AsyncInferenceConfig" in config.document:
            out["AsyncInferenceConfig"] = config.document["AsyncInferenceConfig"]
        return out

    async def list_endpoints(self, document: _Document) -> _Document:
        status = document.get("StatusEquals")
        chosen = [e for e in self._endpoints.values() if status is None or e.status == status]
        page, token = _page(document, chosen, lambda e: (e.name, e.created))
        endpoints = [
            {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.created,
                "LastModifiedTime": e.modified,
                "EndpointStatus": e.status,
            }
            for e in page
        ]
        return {"Endpoints": endpoints, **token}

    async def delete_endpoint(self, document: _Document) -> _Document:
        self._forget(self._endpoint(document["EndpointName"]))
        return {}

    def _forget(self, endpoint: _Endpoint) -> None:
        """Gone from the API and the gateway at once; its containers stop in the background."""
        self._endpoints.pop(endpoint.name, None)
        self._tags.pop(endpoint.arn, None)
        endpoint.deleted = True
        endpoint.status = "Deleting"
        self.lifecycle.unserve(endpoint.name)
        self._changed()

        async def teardown() -> None:
            task = endpoint.task
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if endpoint.running is not None:
                await endpoint.running.stop()
                endpoint.running = None

        self._spawn(teardown())

    # --- transform jobs (transforms.py) --------------------------------------------------------

    async def create_transform_job(self, document: _Document) -> _Document:
        answer = await self.transforms.create(document)
        self._tag(answer["TransformJobArn"], document.get("Tags"))
        return answer

    async def describe_transform_job(self, document: _Document) -> _Document:
        return await self.transforms.describe(document)

    async def list_transform_jobs(self, document: _Document) -> _Document:
        jobs = self.transforms.summaries(document.get("StatusEquals"))
        page, token = _page(document, jobs, lambda j: (j.name, j.created))
        return {"TransformJobSummaries": [self.transforms.summary(j) for j in page], **token}

    async def stop_transform_job(self, document: _Document) -> _Document:
        return await self.transforms.stop(document)

    # --- tags -------------------------------------------------------------------------------

    def _tag(self, arn: str, tags: list[_Document] | None) -> None:
        """Add or replace tags; SageMaker allows 50 per resource."""
        merged = {**self._tags.get(arn, {}), **{t["Key"]: t["Value"] for t in tags or []}}
        if len(merged) > MAX_TAGS:
            raise ApiError(f"{arn}: got {len(merged)} tags; at most {MAX_TAGS} are allowed")
        self._tags[arn] = merged

    def _resource(self, arn: str) -> str:
        known = [m.arn for m in self._models.values()]
        known += [c.arn for c in self._configs.values()]
        known += [e.arn for e in self._endpoints.values()]
        known += [j.arn for j in self.transforms.summaries(None)]
        if arn not in known:
            raise ApiError(
                f'Could not find resource "{arn}": no model, endpoint config or '
                "endpoint of this local SageMaker has that ARN"
            )
        return arn

    async def add_tags(self, document: _Document) -> _Document:
        arn = self._resource(document["ResourceArn"])
        self._tag(arn, document["Tags"])
        return {"Tags": document["Tags"]}

    async def list_tags(self, document: _Document) -> _Document:
        arn = self._resource(document["ResourceArn"])
        tags = [{"Key": k, "Value": v} for k, v in self._tags.get(arn, {}).items()]
        token = document.get("NextToken")
        start = int(token) if isinstance(token, str) and token.isdigit() else 0
        size = int(document.get("MaxResults") or 50)
        more = {"NextToken": str(start + size)} if start + size < len(tags) else {}
        return {"Tags": tags[start : start + size], **more}

    async def delete_tags(self, document: _Document) -> _Document:
        tags = self._tags.get(self._resource(document["ResourceArn"]), {})
        for key in document["TagKeys"]:
            tags.pop(key, None)
        return {}

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _page(
    document: _Document, items: Iterable[T], key: Callable[[T], tuple[str, float]]
) -> tuple[list[T], _Document]:
    """List*'s filters, order and paging (NextToken is the offset of the next page)."""
    contains = (document.get("NameContains") or "").lower()
    before = document.get("CreationTimeBefore")
    after = document.get("CreationTimeAfter")
    chosen = [
        item
        for item in items
        if contains in key(item)[0].lower()
        and (before is None or key(item)[1] < before)
        and (after is None or key(item)[1] > after)
    ]
    by_name = document.get("SortBy") == "Name"
    chosen.sort(key=lambda item: key(item)[0] if by_name else key(item)[1])
    if document.get("SortOrder", "Descending") == "Descending":
        chosen.reverse()
    token = document.get("NextToken")
    start = int(token) if isinstance(token, str) and token.isdigit() else 0
    size = int(document.get("MaxResults") or 100)
    page = chosen[start : start + size]
    more = {"NextToken": str(start + size)} if start + size < len(chosen) else {}
    return page, more


def _check_count(member: str, variant: _Document) -> None:
    """An instance count this machine runs: 1 to MAX_LOCAL_INSTANCES copies of the containers."""
    count = instance_count(variant)
    if not 1 <= count <= MAX_LOCAL_INSTANCES:
        raise ApiError(
            f"{member}: got {count}; the local SageMaker runs 1 to {MAX_LOCAL_INSTANCES} "
            "instances of a variant (each a copy of its containers)"
        )
