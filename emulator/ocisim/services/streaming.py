"""Streaming ``/20180418``: stream pools and streams (admin), plus the data plane.

Admin operations are asynchronous in OCI: creates, updates, deletes and compartment moves answer
with an ``opc-work-request-id`` (the SDK's ``*_and_wait_for_state`` composites poll it) and the
resource passes through CREATING/UPDATING/DELETING for ``provisioningDelay`` virtual seconds.

- A stream lives in exactly one pool. Created with only ``compartmentId``, it goes to that
  compartment's ``DefaultPool``, made on first use as OCI does. Names are unique among the
  non-deleted streams of a pool (409 ``NotAuthorizedOrResourceAlreadyExists``).
- Partitions and retention are immutable; ``UpdateStream`` changes only the pool and tags.
- A deleted stream loses its messages at once. Deleted streams and pools stay readable by id
  (DELETED) for 90 days and are listed only when ``lifecycleState=DELETED`` is asked for.
- Deleting a pool that still holds streams answers 409 (``IncorrectState`` while they are only
  DELETING, ``Conflict`` otherwise).
- ``messagesEndpoint`` is ocisim's own streaming URL for the region, so ``StreamClient`` works with it.
  Kafka is not served: ``kafkaSettings.bootstrapServers`` and ``endpointFqdn`` have the real shape.
- Resource events ``com.oraclecloud.streaming.<operation>`` (lower-cased operation name, e.g.
  ``createstream``) go to the Events service. The names follow OCI's convention (unverified).
- Connect harnesses are not emulated.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
    Regional,
    Route,
    Service,
    cloud_event,
    emit_event,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid
from ocisim.services.streaming_data import StreamingDataPlane
from ocisim.services.streaming_log import StreamLog
from ocisim.services.streaming_resources import (
    RegionState,
    Stream,
    StreamPool,
    parse_kafka,
    parse_kms_key,
    parse_name,
    pool_json,
    require_active,
    state_filter,
    stream_json,
    visible,
)
from ocisim.world import Region, World

DEFAULT_POOL_NAME = "DefaultPool"
#: How long a deleted stream's or pool's record stays readable.
DELETED_RETENTION = 90 * 86400.0
VERSION = "20180418"


class StreamingService(Service):
    name = "streaming"
    versions = (VERSION,)
    work_requests = True
    #: ListWorkRequests answers a ``WorkRequestSummaryCollection``: ``{"items": [...]}``
    work_requests_wrapped = True
    audit_source = "streaming"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._regions: Regional[RegionState] = Regional(lambda _region: RegionState())
        self.data = StreamingDataPlane(world, self._resolve_for_data)
        world.provide("streaming.put", self.data.put_raw)

    def reset(self) -> None:
        self._regions.clear()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/streampools", "CreateStreamPool", self.create_pool, retry_token=True),
            Route("GET", "/streampools", "ListStreamPools", self.list_pools),
            Route("GET", "/streampools/{streamPoolId}", "GetStreamPool", self.get_pool),
            Route("PUT", "/streampools/{streamPoolId}", "UpdateStreamPool", self.update_pool),
            Route("DELETE", "/streampools/{streamPoolId}", "DeleteStreamPool", self.delete_pool),
            Route("POST", "/streampools/{streamPoolId}/actions/changeCompartment", "ChangeStreamPoolCompartment",
                  self.change_pool_compartment),
            Route("POST", "/streams", "CreateStream", self.create_stream),
            Route("GET", "/streams", "ListStreams", self.list_streams),
            Route("GET", "/streams/{streamId}", "GetStream", self.get_stream),
            Route("PUT", "/streams/{streamId}", "UpdateStream", self.update_stream),
            Route("DELETE", "/streams/{streamId}", "DeleteStream", self.delete_stream),
            Route("POST", "/streams/{streamId}/actions/changeCompartment", "ChangeStreamCompartment",
                  self.change_stream_compartment),
            *self.data.routes(),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [ControlRoute("GET", "/streaming/streams/{streamId}/messages", self._control_dump)]

    # -- lookups -----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _state(self, call: Call) -> RegionState:
        return self._regions[call.region.name]

    def _pool(self, call: Call, pool_id: str | None = None, *, deleted: bool = False) -> StreamPool:
        """The pool named by the call; a DELETED one only if ``deleted`` (its record stays readable)."""
        state = self._state(call)
        pool = state.pools.get(pool_id or call.params["streamPoolId"])
        if pool is None or (pool.lifecycle.settle(self._now()) == "DELETED"
                            and (not deleted or self._purged(state, pool))):
            raise errors.not_found()
        call.target(pool.compartment_id, pool.id, pool.name)
        return pool

    def _stream(self, call: Call) -> Stream:
        state = self._state(call)
        stream = state.streams.get(call.params["streamId"])
        if stream is None or self._purged(state, stream):
            raise errors.not_found()
        stream.lifecycle.settle(self._now())
        call.target(stream.compartment_id, stream.id, stream.name)
        return stream

    def _purged(self, state: RegionState, resource: Stream | StreamPool) -> bool:
        """Forget a deleted resource's record once OCI would (90 days after deletion)."""
        if resource.time_deleted is None or self._now() - resource.time_deleted <= DELETED_RETENTION:
            return False
        if isinstance(resource, Stream):
            del state.streams[resource.id]
        else:
            del state.pools[resource.id]
        return True

    def _resolve_for_data(self, region: str, stream_id: str) -> tuple[StreamLog, str]:
        stream = self._regions[region].streams.get(stream_id)
        if stream is None:
            raise errors.not_found()
        state = stream.lifecycle.settle(self._now())
        if state in ("DELETING", "DELETED"):
            raise errors.not_found()
        if state not in ("ACTIVE", "UPDATING"):
            raise errors.incorrect_state(f"The stream is {state}; it accepts messages once ACTIVE.")
        return stream.log, stream.compartment_id

    def _stream_response(self, call: Call, stream: Stream, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(stream_json(stream, call.endpoint(self.name), self._now()),
                             headers={"etag": stream.etag, **(headers or {})})

    def _pool_response(self, call: Call, pool: StreamPool, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(pool_json(pool, call.region.name, self._now()),
                             headers={"etag": pool.etag, **(headers or {})})

    # -- work requests and events --------------------------------------------------------------------

    def _work(self, call: Call, operation: str, compartment_id: str, kind: str, action: str, resource_id: str) -> str:
        path = "streampools" if kind == "streampool" else "streams"
        return self.work_request(call, operation, compartment_id, entity_type=kind, action_type=action,
                                 identifier=resource_id, entity_uri=f"/{VERSION}/{path}/{resource_id}")

    async def _emit(self, region: Region, operation: str, compartment_id: str, resource_id: str, name: str,
                    freeform: dict[str, str], defined: dict[str, dict[str, Any]]) -> None:
        event = cloud_event(self.world, region, f"com.oraclecloud.streaming.{operation.lower()}", source="streaming",
                            compartment_id=compartment_id, resource_id=resource_id, resource_name=name,
                            freeform_tags=freeform, defined_tags=defined)
        await emit_event(self.world, region, event)

    # -- stream pools ----------------------------------------------------------------------------------

    def _new_pool(self, call: Call, compartment_id: str, name: str, body: dict[str, Any]) -> StreamPool:
        freeform, defined = tags(body)
        private = field(body, "privateEndpointDetails", dict)
        if private is not None and not private.get("subnetId"):
            private = None  # OCI treats details without a subnet as a public pool
        now = self._now()
        pool = StreamPool(
            id=new_ocid("streampool", call.region.key), compartment_id=compartment_id, name=name,
            time_created=now, lifecycle=Lifecycle("CREATING"), kafka=parse_kafka(body, None),
            kms_key_id=parse_kms_key(body), private_endpoint=private, freeform_tags=freeform, defined_tags=defined,
            security_attributes=field(body, "securityAttributes", dict, default={}))
        self._state(call).pools[pool.id] = pool
        return pool

    async def create_pool(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        name = parse_name(body)
        pool = self._new_pool(call, compartment_id, name, body)
        pool.lifecycle.move("CREATING", "ACTIVE", self._now(), self.world.settings.provisioning_delay)
        call.target(compartment_id, pool.id, pool.name)
        wr = self._work(call, "CREATE_STREAM_POOL", compartment_id, "streampool", "CREATED", pool.id)
        await self._emit(call.region, "CreateStreamPool", compartment_id, pool.id, pool.name, pool.freeform_tags,
                         pool.defined_tags)
        return self._pool_response(call, pool, {"opc-work-request-id": wr})

    async def list_pools(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        wanted_id, wanted_name, wanted_state = call.query("id"), call.query("name"), state_filter(call)
        now = self._now()
        state = self._state(call)
        items = [p for p in list(state.pools.values())
                 if not self._purged(state, p) and p.compartment_id == compartment_id
                 and (wanted_id is None or p.id == wanted_id) and (wanted_name is None or p.name == wanted_name)
                 and visible(p.lifecycle.settle(now), wanted_state)]
        items = sort_items(call, items, {"NAME": lambda p: (p.name, p.seq),
                                         "TIMECREATED": lambda p: (p.time_created, p.seq)}, "TIMECREATED")
        return list_response(call, [pool_json(p, call.region.name, now, summary=True) for p in items],
                             default_limit=10, max_limit=50)

    async def get_pool(self, call: Call) -> web.StreamResponse:
        return self._pool_response(call, self._pool(call, deleted=True))

    async def update_pool(self, call: Call) -> web.StreamResponse:
        pool = self._pool(call)
        call.check_if_match(pool.etag)
        body = call.json()
        require_active(pool.lifecycle.state, "stream pool")
        name = parse_name(body) if body.get("name") is not None else pool.name
        kafka = parse_kafka(body, pool.kafka) if body.get("kafkaSettings") is not None else pool.kafka
        kms = parse_kms_key(body) if body.get("customEncryptionKeyDetails") is not None else pool.kms_key_id
        freeform, defined = tags(body)
        pool.name, pool.kafka, pool.kms_key_id = name, kafka, kms
        if "freeformTags" in body:
            pool.freeform_tags = freeform
        if "definedTags" in body:
            pool.defined_tags = defined
        if "securityAttributes" in body:
            pool.security_attributes = field(body, "securityAttributes", dict, default={})
        pool.etag = secrets.token_hex(16)
        pool.lifecycle.move("UPDATING", "ACTIVE", self._now(), self.world.settings.provisioning_delay)
        wr = self._work(call, "UPDATE_STREAM_POOL", pool.compartment_id, "streampool", "UPDATED", pool.id)
        return self._pool_response(call, pool, {"opc-work-request-id": wr})

    async def delete_pool(self, call: Call) -> web.StreamResponse:
        pool = self._pool(call)
        call.check_if_match(pool.etag)
        require_active(pool.lifecycle.state, "stream pool")
        now = self._now()
        left = [state for state in (s.lifecycle.settle(now) for s in self._state(call).streams.values()
                                    if s.pool_id == pool.id) if state != "DELETED"]
        if left and all(state == "DELETING" for state in left):
            raise errors.incorrect_state("The stream pool's streams are still being deleted.")
        if left:
            raise errors.conflict(f"The stream pool still holds {len(left)} stream(s); delete them first.")
        pool.time_deleted = now
        pool.etag = secrets.token_hex(16)
        pool.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        wr = self._work(call, "DELETE_STREAM_POOL", pool.compartment_id, "streampool", "DELETED", pool.id)
        await self._emit(call.region, "DeleteStreamPool", pool.compartment_id, pool.id, pool.name,
                         pool.freeform_tags, pool.defined_tags)
        return empty_response(202, {"opc-work-request-id": wr})

    async def change_pool_compartment(self, call: Call) -> web.StreamResponse:
        pool = self._pool(call)
        call.check_if_match(pool.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        require_active(pool.lifecycle.state, "stream pool")
        pool.compartment_id = target
        pool.etag = secrets.token_hex(16)
        wr = self._work(call, "UPDATE_STREAM_POOL", target, "streampool", "UPDATED", pool.id)
        return empty_response(202, {"opc-work-request-id": wr})

    def _default_pool(self, call: Call, compartment_id: str) -> StreamPool:
        now = self._now()
        for pool in self._state(call).pools.values():
            if (pool.compartment_id == compartment_id and pool.name == DEFAULT_POOL_NAME
                    and pool.lifecycle.settle(now) not in ("DELETING", "DELETED")):
                return pool
        pool = self._new_pool(call, compartment_id, DEFAULT_POOL_NAME, {})
        pool.lifecycle.move("CREATING", "ACTIVE", now, 0.0)
        return pool

    # -- streams ------------------------------------------------------------------------------------

    def _live_streams(self, call: Call) -> list[Stream]:
        now = self._now()
        return [s for s in self._state(call).streams.values()
                if s.lifecycle.settle(now) not in ("DELETING", "DELETED")]

    def _check_name_free(self, call: Call, pool: StreamPool, name: str, stream_id: str | None) -> None:
        """Stream names are unique among the live streams of a pool."""
        if any(s.pool_id == pool.id and s.name == name and s.id != stream_id for s in self._live_streams(call)):
            raise errors.already_exists(f"A stream named '{name}' already exists in stream pool {pool.id}.")

    async def create_stream(self, call: Call) -> web.StreamResponse:
        body = call.json()
        name = parse_name(body)
        partitions = field(body, "partitions", int, required=True)
        if partitions < 1:
            raise errors.invalid("'partitions' must be at least 1.")
        retention = field(body, "retentionInHours", int, default=24)
        if not 24 <= retention <= 168:
            raise errors.invalid("'retentionInHours' must be between 24 and 168.")
        freeform, defined = tags(body)
        compartment_id, pool_id = body.get("compartmentId"), body.get("streamPoolId")
        if compartment_id is not None and pool_id is not None:
            raise errors.invalid("Specify either 'compartmentId' or 'streamPoolId', not both.")
        if pool_id is not None:
            if not isinstance(pool_id, str):
                raise errors.invalid("'streamPoolId' must be a string.")
            pool = self._pool(call, pool_id)
            require_active(pool.lifecycle.state, "stream pool")
        elif compartment_id is not None:
            self.world.require_compartment(compartment_id)
            assert isinstance(compartment_id, str)
            pool = self._default_pool(call, compartment_id)
        else:
            raise errors.missing("compartmentId")
        self._check_name_free(call, pool, name, None)
        state = self._state(call)
        now = self._now()
        used = sum(s.partitions for s in self._live_streams(call))
        limit = self.world.settings.stream_partition_limit
        if used + partitions > limit:
            raise errors.limit_exceeded(f"The partition-count limit of {limit} for the region would be "
                                        f"exceeded ({used} in use).")
        stream_id = new_ocid("stream", call.region.key)
        stream = Stream(id=stream_id, name=name, partitions=partitions, retention_hours=retention,
                        compartment_id=pool.compartment_id, pool_id=pool.id, time_created=now,
                        lifecycle=Lifecycle("CREATING"), freeform_tags=freeform, defined_tags=defined,
                        log=StreamLog(stream_id, name, partitions, retention))
        stream.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        state.streams[stream.id] = stream
        call.target(stream.compartment_id, stream.id, stream.name)
        wr = self._work(call, "CREATE_STREAM", stream.compartment_id, "stream", "CREATED", stream.id)
        await self._emit(call.region, "CreateStream", stream.compartment_id, stream.id, stream.name,
                         stream.freeform_tags, stream.defined_tags)
        return self._stream_response(call, stream, {"opc-work-request-id": wr})

    async def list_streams(self, call: Call) -> web.StreamResponse:
        compartment_id, pool_id = call.query("compartmentId"), call.query("streamPoolId")
        if (compartment_id is None) == (pool_id is None):
            raise errors.invalid("Specify exactly one of 'compartmentId' and 'streamPoolId'.")
        if pool_id is not None:
            pool = self._pool(call, pool_id)
            call.target(pool.compartment_id)
        else:
            self.world.require_compartment(compartment_id)
            call.target(compartment_id)
        wanted_id, wanted_name, wanted_state = call.query("id"), call.query("name"), state_filter(call)
        state = self._state(call)
        now = self._now()
        items = [s for s in list(state.streams.values())
                 if not self._purged(state, s)
                 and (s.pool_id == pool_id if pool_id is not None else s.compartment_id == compartment_id)
                 and (wanted_id is None or s.id == wanted_id) and (wanted_name is None or s.name == wanted_name)
                 and visible(s.lifecycle.settle(now), wanted_state)]
        items = sort_items(call, items, {"NAME": lambda s: (s.name, s.seq),
                                         "TIMECREATED": lambda s: (s.time_created, s.seq)}, "TIMECREATED")
        endpoint = call.endpoint(self.name)
        return list_response(call, [stream_json(s, endpoint, now, summary=True) for s in items],
                             default_limit=10, max_limit=50)

    async def get_stream(self, call: Call) -> web.StreamResponse:
        return self._stream_response(call, self._stream(call))

    async def update_stream(self, call: Call) -> web.StreamResponse:
        stream = self._stream(call)
        call.check_if_match(stream.etag)
        body = call.json()
        for immutable in ("partitions", "retentionInHours", "name", "compartmentId"):
            if immutable in body:
                how = "changeCompartment" if immutable == "compartmentId" else "a new stream"
                raise errors.invalid(f"'{immutable}' cannot be updated (use {how}).")
        require_active(stream.lifecycle.state, "stream")
        pool_id = field(body, "streamPoolId", str)
        if pool_id is not None and pool_id != stream.pool_id:
            pool = self._pool(call, pool_id)
            call.target(stream.compartment_id, stream.id, stream.name)
            require_active(pool.lifecycle.state, "stream pool")
            self._check_name_free(call, pool, stream.name, stream.id)
            stream.pool_id = pool.id
        freeform, defined = tags(body)
        if "freeformTags" in body:
            stream.freeform_tags = freeform
        if "definedTags" in body:
            stream.defined_tags = defined
        stream.etag = secrets.token_hex(16)
        stream.lifecycle.move("UPDATING", "ACTIVE", self._now(), self.world.settings.provisioning_delay)
        wr = self._work(call, "UPDATE_STREAM", stream.compartment_id, "stream", "UPDATED", stream.id)
        return self._stream_response(call, stream, {"opc-work-request-id": wr})

    async def delete_stream(self, call: Call) -> web.StreamResponse:
        stream = self._stream(call)
        call.check_if_match(stream.etag)
        if stream.lifecycle.state == "DELETED":
            raise errors.not_found()
        require_active(stream.lifecycle.state, "stream")
        now = self._now()
        stream.log.clear()
        stream.time_deleted = now
        stream.etag = secrets.token_hex(16)
        stream.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        wr = self._work(call, "DELETE_STREAM", stream.compartment_id, "stream", "DELETED", stream.id)
        await self._emit(call.region, "DeleteStream", stream.compartment_id, stream.id, stream.name,
                         stream.freeform_tags, stream.defined_tags)
        return empty_response(202, {"opc-work-request-id": wr})

    async def change_stream_compartment(self, call: Call) -> web.StreamResponse:
        stream = self._stream(call)
        call.check_if_match(stream.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        require_active(stream.lifecycle.state, "stream")
        stream.compartment_id = target
        stream.etag = secrets.token_hex(16)
        wr = self._work(call, "UPDATE_STREAM", target, "stream", "UPDATED", stream.id)
        return empty_response(202, {"opc-work-request-id": wr})

    # -- inventory and control ---------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        state = self._regions[region]
        now = self._now()
        endpoint = f"{self.world.base_url}/{region}/{self.name}"
        return {
            "streamPools": [pool_json(p, region, now) for p in state.pools.values()
                            if p.lifecycle.settle(now) != "DELETED"],
            "streams": [stream_json(s, endpoint, now) for s in state.streams.values()
                        if s.lifecycle.settle(now) != "DELETED"],
        }

    async def _control_dump(self, request: web.Request) -> web.StreamResponse:
        """``GET /_ocisim/streaming/streams/{id}/messages[?partition=N]``: every retained message."""
        stream_id = request.match_info["streamId"]
        text = request.query.get("partition")
        if text is not None and not (text.isascii() and text.isdigit()):
            raise errors.invalid("'partition' must be a partition number.")
        for _region, state in self._regions.items():
            stream = state.streams.get(stream_id)
            if stream is not None:
                if text is not None and int(text) >= stream.partitions:
                    raise errors.invalid(f"The stream has no partition {text}.")
                return json_response(self.data.dump(stream.log, int(text) if text is not None else None))
        raise errors.not_found()
