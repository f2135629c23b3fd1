"""Health and metrics, for load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from contact_import.web.deps import Rt
from contact_import.web.schemas import VALIDATION_ERROR, HealthOut

router = APIRouter(tags=["operations"], responses=VALIDATION_ERROR)


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(rt: Rt) -> HealthOut | JSONResponse:
    """200 when the database answers, 503 when it does not."""
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        body = HealthOut(status="unavailable", database="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="ok", database="ok")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(rt: Rt) -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
