"""The JSON Schemas shipped for editors: ``flows/schema.json`` (a flow file)
and ``flows/routes.schema.json`` (routes.yaml), generated from :mod:`ivr.model`.

Regenerate with ``ivr schema -o flows/schema.json`` and ``ivr schema --routes
-o flows/routes.schema.json``; a test fails when the shipped files are stale.
A flow file opts in with a first line
``# yaml-language-server: $schema=schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from ivr.model import Routes, flow_json_schema

__all__ = ["FLOW_SCHEMA_FILE", "ROUTES_SCHEMA_FILE", "routes_json_schema", "schema_text"]

FLOW_SCHEMA_FILE = "schema.json"
ROUTES_SCHEMA_FILE = "routes.schema.json"


def routes_json_schema() -> dict[str, Any]:
    """The JSON Schema of routes.yaml."""
    schema = Routes.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "callcore IVR routes"
    return schema


def schema_text(which: str = "flow") -> str:
    """The schema as the text shipped in flows/ (``which``: ``flow`` or ``routes``)."""
    schema = flow_json_schema() if which == "flow" else routes_json_schema()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
