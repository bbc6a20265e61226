"""Schema conversion: CRD ``openAPIV3Schema`` and kubernetes-validate schemas to standalone JSON schemas.

The output is what kubeconform reads: one self-contained file per kind and apiVersion, in a plain and a
``-strict`` variant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from delivery.core.errors import ToolError

# Bump when the conversion below changes: it is part of the cache key.
CONVERTER_VERSION = "1"

# --------------------------------------------------------------------------- conversion

# JSON-schema keywords whose value is a schema, a list of schemas, or a map of schemas.
_SCHEMA_KEYS = ("additionalProperties", "items", "not", "additionalItems", "contains")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "items", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")


def _subschemas(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for key in _SCHEMA_KEYS:
        value = node.get(key)
        if isinstance(value, dict):
            yield value
    for key in _SCHEMA_LIST_KEYS:
        value = node.get(key)
        if isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict))
    for key in _SCHEMA_MAP_KEYS:
        value = node.get(key)
        if isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, dict))


def strictify(schema: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """Close every object that lists its properties (``additionalProperties: false``), in place.

    Like openapi2jsonschema (and kubectl): objects that already say something about additional
    properties, or keep unknown fields (``x-kubernetes-preserve-unknown-fields``), stay open.
    With ``root=False`` the top level stays open (the catalog's default).
    """
    if (
        root
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    for sub in _subschemas(schema):
        strictify(sub)
    return schema


def openapi_to_jsonschema(node: Any) -> Any:
    """Convert a CRD's OpenAPI v3 schema to JSON schema (returns a new object).

    ``nullable: true`` becomes a ``null`` type, and ``int-or-string`` (as a format or the
    ``x-kubernetes-int-or-string`` marker) becomes ``oneOf: [string, integer]``.
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: openapi_to_jsonschema(v) for k, v in value.items()}
        elif key in _SCHEMA_KEYS or key in _SCHEMA_LIST_KEYS:
            out[key] = openapi_to_jsonschema(value)
        else:
            out[key] = value
    if out.get("format") == "int-or-string" or (
        out.get("x-kubernetes-int-or-string") and not ({"anyOf", "oneOf"} & out.keys())
    ):
        out.pop("format", None)
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def crd_schemas(crd: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(apiVersion, kind, JSON schema)`` for every served version of a CRD document."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    found = []
    for version in spec.get("versions") or []:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if version.get("served", True) and isinstance(schema, dict):
            found.append((f"{group}/{version['name']}", kind, openapi_to_jsonschema(schema)))
    return found


def schema_relpath(api_version: str, kind: str) -> str:
    """``<group>/<kind>_<version>.json`` exactly as kubeconform's template fills it in."""
    parts = api_version.split("/")
    return f"{parts[0]}/{kind.lower()}_{parts[-1]}.json"


_DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("#/$defs/" + v.removeprefix(_DEFS_PREFIX))
            if k == "$ref" and isinstance(v, str) and v.startswith(_DEFS_PREFIX)
            else _rewrite_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def standalone(kind_schema: dict[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """A kind's schema with the definitions it uses (transitively) inlined under ``$defs``."""
    needed: dict[str, Any] = {}
    queue = [r.rsplit("/", 1)[-1] for r in _refs(kind_schema) if "#/$defs/" in r]
    while queue:
        name = queue.pop()
        if name in needed:
            continue
        if name not in definitions:
            raise ToolError(f"kubernetes-validate: definition {name!r} is referenced but missing")
        needed[name] = definitions[name]
        queue.extend(r.rsplit("/", 1)[-1] for r in _refs(definitions[name]) if "#/$defs/" in r)
    out: dict[str, Any] = _rewrite_refs({k: v for k, v in kind_schema.items() if k != "$id"})
    if needed:
        out["$defs"] = {name: needed[name] for name in sorted(needed)}
    return out
