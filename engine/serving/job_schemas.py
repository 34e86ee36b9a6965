"""The OpenAPI description of each online job's request: a pydantic model per job built from the
fields the online service accepts (``Endpoint.fields``: entity keys, request values, optional
helpers and event time, typed from the snapshot's spine columns), and the document that
``/openapi.json`` serves. Documentation only: requests are still checked by
``engine.serving.vectors.coerce_row`` (errors with JSON paths, NaN and duplicate keys refused),
so the schema and the check cannot disagree on what is accepted without
``tests/serving/test_protocols.py`` noticing. Must not touch HTTP libraries beyond pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Union

from engine.serving.online import MAX_ROWS, Endpoint
from engine.serving.vectors import TIMESTAMP_RANGE, InputField

REF = "#/components/schemas/{model}"


def model_name(job: str, suffix: str) -> str:
    """``tip_api`` -> ``TipApiRow`` (the schema names of a job).

    >>> model_name("tip_api", "Rows")
    'TipApiRows'
    """
    return "".join(part.capitalize() for part in job.split("_")) + suffix


def _annotation(f: InputField) -> Any:
    from pydantic import Field, StrictBool, StrictInt, StrictStr

    base: Any = {
        "int": Annotated[StrictInt, Field(ge=-(2**127), le=2**128 - 1)],
        "float": Annotated[float, Field(allow_inf_nan=False)],
        "str": StrictStr,
        "bool": StrictBool,
        "timestamp": Annotated[datetime, Field(description=f"ISO 8601; naive is UTC; within {TIMESTAMP_RANGE}")],
        "any": Union[StrictInt, float, StrictStr, StrictBool],
    }[f.kind]
    return base if f.key else base | None


def row_model(job: str, fields: Mapping[str, InputField]) -> type:
    """The pydantic model of one request row of ``job`` (unknown fields forbidden)."""
    from pydantic import ConfigDict, Field, create_model

    spec: dict[str, Any] = {}
    for f in fields.values():
        role = "entity key (not null)" if f.key else ("request value" if f.required else "optional (helper or event time)")
        default = ... if f.required else None
        spec[f.name] = (_annotation(f), Field(default, description=f"{role}; {f.kind}"))
    return create_model(model_name(job, "Row"), __config__=ConfigDict(extra="forbid", title=model_name(job, "Row")), **spec)


def rows_model(job: str, row: type) -> type:
    """The pydantic model of ``{"rows": [row, ...]}`` (1 to MAX_ROWS rows)."""
    from pydantic import ConfigDict, Field, create_model

    return create_model(model_name(job, "Rows"), __config__=ConfigDict(extra="forbid", title=model_name(job, "Rows")),
                        rows=(list[row], Field(..., min_length=1, max_length=MAX_ROWS)))  # type: ignore[valid-type]


def job_models(jobs: Mapping[str, Endpoint]) -> dict[str, tuple[type, type]]:
    """Per job: (row model, rows model)."""
    out = {}
    for name, ep in sorted(jobs.items()):
        row = row_model(name, ep.fields)
        out[name] = (row, rows_model(name, row))
    return out


def request_body(job: str) -> dict:
    """The OpenAPI ``requestBody`` of ``POST /jobs/<job>/predict``: one row or ``{"rows": [...]}``."""
    return {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": REF.format(model=model_name(job, "Row"))}, {"$ref": REF.format(model=model_name(job, "Rows"))}]}}}}


def component_schemas(jobs: Mapping[str, Endpoint]) -> dict[str, dict]:
    """``components.schemas`` entries for every job's row and rows models."""
    from pydantic.json_schema import models_json_schema

    models = [(m, "validation") for pair in job_models(jobs).values() for m in pair]
    if not models:
        return {}
    _, doc = models_json_schema(models, ref_template=REF)
    return doc.get("$defs", {})


def add_job_schemas(openapi: dict, jobs: Mapping[str, Endpoint]) -> dict:
    """``openapi`` with the jobs' schemas in its components and each ``/jobs/<job>/predict`` path's
    body pointing at them (the generic ``/jobs/{job}/predict`` gets a ``oneOf`` of all jobs)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(component_schemas(jobs))
    for name in jobs:
        operation = openapi.get("paths", {}).get(f"/jobs/{name}/predict", {}).get("post")
        if operation is not None:
            operation["requestBody"] = request_body(name)
    generic = openapi.get("paths", {}).get("/jobs/{job}/predict", {}).get("post")
    if generic is not None and jobs:
        refs = [ref for name in sorted(jobs) for ref in request_body(name)["content"]["application/json"]["schema"]["oneOf"]]
        generic["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"oneOf": refs}}}}
    return openapi
