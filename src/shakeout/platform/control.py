"""The control API: what faults need from the embedded platform, on loopback, behind a token.

Routes (all JSON, all need ``Authorization: Bearer <token>``):

=====================================  ===========================================================
GET  /v1/status                        services, versions, weights, rollouts and every replica
GET  /v1/replicas                      replicas with zone, version, state, readiness, restarts
GET  /v1/events?since=SEQ              platform events (restarts, ejections, rollouts, faults)
POST /v1/replicas/{id}/{action}        action: kill | freeze | resume | evict (429: budget says no)
POST /v1/zones/{zone}/{action}         action: kill (zone down) | freeze | resume | (un)cordon
POST /v1/zones/{zone}/packet-loss      {"percent"}: the kernel drops that share (0: none)
POST /v1/services/{name}/deploy        {"version", "weight", "env", "replicas"}
POST /v1/services/{name}/promote
POST /v1/services/{name}/rollback
POST /v1/services/{name}/scale         {"replicas"} (null: the topology's count)
POST /v1/services/{name}/evict         {"replicas"}: capacity loss, replicas not rescheduled
POST /v1/services/{name}/restore       bring evicted replicas back
POST /v1/secrets/rotate
POST /v1/secrets/store                 {"reachable": false} takes the secret store away
POST /v1/registry                      {"reachable": false}: a registry outage (true: it is back)
GET  /v1/secrets/status                the store's key id and every replica's key id and source
POST /v1/secrets/old-key-check         {"service"}: is the previous key refused (401)?
GET  /v1/config                        the live config (feature flags), canary, last outcome
POST /v1/config                        {"flags": {...}}: staged config change (see config.py)
POST /v1/config/revert                 restore the config in force before the last change
GET  /v1/migrations/orders             the orders store's schema state
POST /v1/migrations/orders             {"to": "v2" | "v1"}: migrate the orders store's schema
=====================================  ===========================================================
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shakeout.errors import EvictionRefused, PlatformError
from shakeout.platform import secrets as platform_secrets
from shakeout.platform.replicas import NotFound
from shakeout.platform.supervisor import Supervisor


class DeployRequest(BaseModel):
    """Body of ``POST /v1/services/{name}/deploy``."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=40)
    weight: float = Field(ge=0.0, le=1.0)
    env: dict[str, str] = {}
    replicas: int | None = Field(default=None, ge=1, le=50)


class ScaleRequest(BaseModel):
    """Body of ``POST /v1/services/{name}/scale``."""

    model_config = ConfigDict(extra="forbid")
    replicas: int | None = Field(default=None, ge=0, le=50)


class LossRequest(BaseModel):
    """Body of ``POST /v1/zones/{zone}/packet-loss``."""

    model_config = ConfigDict(extra="forbid")
    percent: int = Field(ge=0, le=100)


class EvictRequest(BaseModel):
    """Body of ``POST /v1/services/{name}/evict``."""

    model_config = ConfigDict(extra="forbid")
    replicas: int = Field(ge=1, le=50)


class ConfigRequest(BaseModel):
    """Body of ``POST /v1/config``."""

    model_config = ConfigDict(extra="forbid")
    flags: dict[str, str] = Field(min_length=1)


class OldKeyRequest(BaseModel):
    """Body of ``POST /v1/secrets/old-key-check``."""

    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, max_length=40)


class MigrateRequest(BaseModel):
    """Body of ``POST /v1/migrations/orders``."""

    model_config = ConfigDict(extra="forbid")
    to: Literal["v1", "v2"]


class StoreRequest(BaseModel):
    """Body of ``POST /v1/secrets/store`` and ``POST /v1/registry``."""

    model_config = ConfigDict(extra="forbid")
    reachable: bool


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise PlatformError("request body must be a JSON object")
    return data


async def _rollback_on_alert(supervisor: Supervisor, alert: dict[str, Any]) -> None:
    """``platform.rollout.rollback_on_alerts``: a firing alert named there rolls back the
    releases in progress of its ``service`` label, or every one if that service has none."""
    name = alert["alertname"]
    if name not in supervisor.spec.rollout.rollback_on_alerts:
        return
    live = [
        svc.name
        for svc in supervisor.services.values()
        if svc.rollout is not None and svc.rollout.status in ("progressing", "available")
    ]
    named = str(alert["labels"].get("service", ""))
    for service in [named] if named in live else live:
        await supervisor.rollback(service, f"alert {name} fired ({alert['labels']})")


def create_control_app(supervisor: Supervisor, token: str) -> ASGIApp:
    """Build the control API for a running supervisor."""

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(supervisor.snapshot())

    async def replicas(request: Request) -> JSONResponse:
        return JSONResponse([r.as_dict() for s in supervisor.services.values() for r in s.replicas])

    async def events(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse([e for e in supervisor.events if e["seq"] > since])

    async def replica_action(request: Request) -> JSONResponse:
        replica = supervisor.find_replica(request.path_params["replica"])
        action = request.path_params["action"]
        if action == "kill":
            supervisor.kill(replica)
        elif action == "freeze":
            supervisor.freeze(replica)
        elif action == "resume":
            supervisor.resume(replica)
        elif action == "evict":  # the Eviction API: 429 while a disruption budget refuses
            return JSONResponse(await supervisor.drain.evict(replica))
        else:
            return _error(404, f"unknown replica action {action!r} (kill, freeze, resume, evict)")
        return JSONResponse({"replica": replica.id, "action": action})

    async def zone_action(request: Request) -> JSONResponse:
        zone = request.path_params["zone"]
        action = request.path_params["action"]
        if action == "kill":
            ids = supervisor.zone_down(zone)
        elif action == "freeze":
            ids = supervisor.zone_freeze(zone)
        elif action == "resume":
            ids = supervisor.zone_up(zone)
        elif action in ("cordon", "uncordon"):  # a node drain's, not a fault of the world
            ids = [r.id for r in supervisor.zone_replicas(zone)]
            (supervisor.drain.cordon if action == "cordon" else supervisor.drain.uncordon)(zone)
        else:
            return _error(
                404, f"unknown zone action {action!r} (kill, freeze, resume, cordon, uncordon)"
            )
        return JSONResponse({"zone": zone, "action": action, "replicas": ids})

    async def packet_loss(request: Request) -> JSONResponse:
        """A fault of the world's network: the kernel drops a share of the zone's packets."""
        body = LossRequest.model_validate(await _body(request))
        zone = request.path_params["zone"]
        hit = supervisor.zone_replicas(zone)  # an unknown zone is named
        supervisor.world.packet_loss.set(zone, [r.port for r in hit], body.percent)
        ids = [r.id for r in hit]
        supervisor.event("zone_packet_loss", zone=zone, percent=body.percent, replicas=ids)
        return JSONResponse({"zone": zone, "percent": body.percent, "replicas": ids})

    async def deploy(request: Request) -> JSONResponse:
        body = DeployRequest.model_validate(await _body(request))
        rollout = await supervisor.deploy(
            request.path_params["service"], body.version, body.weight, body.env, body.replicas
        )
        return JSONResponse(rollout.as_dict(), status_code=202)

    async def promote(request: Request) -> JSONResponse:
        rollout = await supervisor.promote(request.path_params["service"])
        return JSONResponse(rollout.as_dict())

    async def rollback(request: Request) -> JSONResponse:
        rollout = await supervisor.rollback(request.path_params["service"], "requested")
        return JSONResponse(rollout.as_dict() if rollout else {"status": "nothing to roll back"})

    async def scale(request: Request) -> JSONResponse:
        body = ScaleRequest.model_validate(await _body(request))
        count = await supervisor.scale(request.path_params["service"], body.replicas)
        return JSONResponse({"service": request.path_params["service"], "replicas": count})

    async def evict(request: Request) -> JSONResponse:
        body = EvictRequest.model_validate(await _body(request))
        ids = await supervisor.deployments.evict(request.path_params["service"], body.replicas)
        return JSONResponse({"service": request.path_params["service"], "evicted": ids})

    async def restore(request: Request) -> JSONResponse:
        count = await supervisor.deployments.restore_capacity(request.path_params["service"])
        return JSONResponse({"service": request.path_params["service"], "restored": count})

    async def rotate(request: Request) -> JSONResponse:
        return JSONResponse({"rotated_at": supervisor.rotate_key()})

    async def secret_store(request: Request) -> JSONResponse:
        body = StoreRequest.model_validate(await _body(request))
        return JSONResponse({"reachable": supervisor.secret_store(body.reachable)})

    async def registry(request: Request) -> JSONResponse:
        body = StoreRequest.model_validate(await _body(request))
        return JSONResponse({"reachable": await supervisor.registry_reachable(body.reachable)})

    async def secrets_status(request: Request) -> JSONResponse:
        return JSONResponse(await platform_secrets.key_status(supervisor))

    async def old_key_check(request: Request) -> JSONResponse:
        body = OldKeyRequest.model_validate(await _body(request))
        return JSONResponse(await platform_secrets.probe_old_key(supervisor, body.service))

    async def config_status(request: Request) -> JSONResponse:
        return JSONResponse(supervisor.config.status())

    async def config_apply(request: Request) -> JSONResponse:
        body = ConfigRequest.model_validate(await _body(request))
        return JSONResponse(await supervisor.config.apply(body.flags))

    async def config_revert(request: Request) -> JSONResponse:
        return JSONResponse(await supervisor.config.revert())

    async def migration_status(request: Request) -> JSONResponse:
        return JSONResponse(await supervisor.migrations.status())

    notifications: list[dict[str, Any]] = []

    async def notify(request: Request) -> JSONResponse:
        # Alertmanager's webhook (a receiver that records what it got, as an on-call tool
        # would): every notification kept with the time it arrived, and journalled.
        payload = await _body(request)
        receiver = request.path_params["receiver"]
        alerts = [
            {
                "alertname": str(a.get("labels", {}).get("alertname", "")),
                "status": str(a.get("status", "")),
                "labels": a.get("labels", {}),
                "annotations": a.get("annotations", {}),
                "startsAt": a.get("startsAt"),
                "endsAt": a.get("endsAt"),
            }
            for a in payload.get("alerts", [])
            if isinstance(a, dict)
        ]
        record = {"t": time.time(), "receiver": receiver, "status": payload.get("status"),
                  "alerts": alerts}  # fmt: skip
        notifications.append(record)
        with (supervisor.state_dir / "notifications.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        supervisor.event(
            "alert_notified",
            receiver=receiver,
            alerts=[f"{a['alertname']} {a['status']}" for a in alerts],
        )
        for alert in alerts:
            if alert["status"] == "firing":
                await _rollback_on_alert(supervisor, alert)
        return JSONResponse({"received": len(alerts)})

    async def notified(request: Request) -> JSONResponse:
        since = float(request.query_params.get("since", "0"))
        return JSONResponse([n for n in notifications if n["t"] >= since])

    async def migrate(request: Request) -> JSONResponse:
        body = MigrateRequest.model_validate(await _body(request))
        return JSONResponse(await supervisor.migrations.migrate(body.to))

    app = Starlette(
        routes=[
            Route("/v1/status", status),
            Route("/v1/replicas", replicas),
            Route("/v1/events", events),
            Route("/v1/replicas/{replica}/{action}", replica_action, methods=["POST"]),
            Route("/v1/zones/{zone}/packet-loss", packet_loss, methods=["POST"]),
            Route("/v1/zones/{zone}/{action}", zone_action, methods=["POST"]),
            Route("/v1/services/{service}/deploy", deploy, methods=["POST"]),
            Route("/v1/services/{service}/promote", promote, methods=["POST"]),
            Route("/v1/services/{service}/rollback", rollback, methods=["POST"]),
            Route("/v1/services/{service}/scale", scale, methods=["POST"]),
            Route("/v1/services/{service}/evict", evict, methods=["POST"]),
            Route("/v1/services/{service}/restore", restore, methods=["POST"]),
            Route("/v1/secrets/rotate", rotate, methods=["POST"]),
            Route("/v1/secrets/store", secret_store, methods=["POST"]),
            Route("/v1/secrets/status", secrets_status),
            Route("/v1/registry", registry, methods=["POST"]),
            Route("/v1/secrets/old-key-check", old_key_check, methods=["POST"]),
            Route("/v1/config", config_status),
            Route("/v1/config", config_apply, methods=["POST"]),
            Route("/v1/config/revert", config_revert, methods=["POST"]),
            Route("/v1/migrations/orders", migration_status),
            Route("/v1/migrations/orders", migrate, methods=["POST"]),
            Route("/v1/alerts/notify/{receiver}", notify, methods=["POST"]),
            Route("/v1/alerts/notifications", notified),
        ],
        exception_handlers={
            NotFound: lambda req, exc: _error(404, str(exc)),
            EvictionRefused: lambda req, exc: _error(429, str(exc)),
            PlatformError: lambda req, exc: _error(409, str(exc)),
            ValidationError: lambda req, exc: _error(400, str(exc)),
            ValueError: lambda req, exc: _error(400, f"invalid request: {exc}"),
        },
    )
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                response = _error(401, "missing or wrong control token (see the state file)")
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded
