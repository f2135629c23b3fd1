"""Health and metrics, for load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contact_import.store.db import database_answers
from contact_import.web.deps import Rt
from contact_import.web.schemas import VALIDATION_ERROR, HealthOut
from contact_import.web.supervision import InProcessWorker

router = APIRouter(tags=["operations"], responses=VALIDATION_ERROR)


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(rt: Rt, request: Request) -> HealthOut | JSONResponse:
    """200 when the database answers and the in-process worker (if any) runs; 503 otherwise."""
    supervised: InProcessWorker | None = request.app.state.in_process_worker
    worker = "off" if supervised is None else supervised.health
    database = "ok" if database_answers(rt.engine) else "unreachable"
    if database == "ok" and worker in ("off", "running"):
        return HealthOut(status="ok", database=database, worker=worker)
    body = HealthOut(status="unavailable", database=database, worker=worker)
    return JSONResponse(body.model_dump(), status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(rt: Rt) -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
