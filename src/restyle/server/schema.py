"""The server's ``/openapi.json``: FastAPI's, with what only the running server knows written in — its
caps (``--max-size``, ``--max-iterations``, ``--max-styles``, ``--max-upload-mb``), the bundled
examples and fast models a job may name, the run options' schema and the links from a new job to
its routes — so that a client generated from it, or a fuzzer, sees the contract the server keeps."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from restyle import api
from restyle.server.job_options import options_model

#: The longest ``Idempotency-Key`` taken (422 beyond).
MAX_KEY = 200
#: The routes a new job's links lead to; its event stream is left out (it lasts as long as the job).
LINKED = {"GetJob": ("get", ""), "Cancel": ("post", "/cancel"), "Delete": ("delete", ""), "Result": ("get", "/result"),
          "Losses": ("get", "/losses.csv"), "Thumbnail": ("get", "/thumbnail"), "Input": ("get", "/inputs/{index}"),
          "Finish": ("post", "/finish"), "Rerun": ("post", "/rerun")}


def openapi(app: FastAPI) -> dict[str, Any]:
    """The schema of ``app`` as this server runs it (made once, on the first request for it)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    state = getattr(app.state, "restyle", None)
    settings = app.state.settings
    names = sorted(state.names) if state is not None else []
    examples = list(state.examples) if state is not None else list(api.example_images())
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Options"] = _options(settings, names)
    _submission(schema, settings, examples)
    for parameter in schema["paths"]["/api/examples/{name}/thumbnail"]["get"]["parameters"]:
        if parameter["name"] == "name":  # the bundled examples' file names (another name: 404)
            parameter["schema"] = {**parameter["schema"], "enum": examples}
    _rerun(schema)
    _links(schema)
    app.openapi_schema = schema
    return schema


def caps(settings: Any) -> dict[str, int]:
    """The server's caps on single options, by field (the schema states them; ``scales``: each item)."""
    return {"size": settings.max_size, "scales": settings.max_size, "iterations": settings.max_iterations,
            "refine": settings.max_iterations}


def _options(settings: Any, names: list[str]) -> dict[str, Any]:
    """The run options' schema with this server's caps and the names of the fast models it offers."""
    model = options_model()
    out = copy.deepcopy(model.model_json_schema())
    props = out["properties"]
    for name, most in caps(settings).items():
        if name == "scales":
            props[name]["items"] = {**props[name].get("items", {}), "maximum": most}
        else:
            props[name]["maximum"] = most
    props["size"]["default"] = min(props["size"]["default"], settings.max_size)  # as the server applies it
    for field in api.listed_fields():
        props[field]["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}] if names else [{"type": "null"}]
    out["allOf"] = _method_rules(props)
    out["description"] = (
        "Run options: the fields of restyle.config.Config (restyle run's options). Besides each field's own "
        "bounds: `scales` increase; `style_blend` gives one weight per style image (per style the fast model "
        "holds); `refine` needs `fast_model`; a method's own options belong to that method; methods that take "
        "paintings (GET /api/options: methods[].paintings) need style images, a fast model takes none; the "
        "output's pixels stay under `max_pixels`.")
    return out


def _set(field: str, props: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema for "``field`` is given and is not its default (null, or 0 for ``refine``)"."""
    default = props[field].get("default")
    return {"required": [field], "properties": {field: {"not": {"type": "null"} if default is None
                                                        else {"const": default}}}}


def _method_rules(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules between options that JSON Schema can state: a method's own option names that method
    (or none), and two methods' own options never come together."""
    own = {name: [f for f in (*m.owns, *(o.name for o in m.options)) if f in props and
                  props[f].get("anyOf") != [{"type": "null"}] and props[f].get("type") != "null"]
           for name, m in api.methods().items()}
    rules = [{"if": _set(f, props), "then": {"properties": {"method": {"enum": [name, None]}}}}
             for name, fields in own.items() for f in fields]
    rules += [{"not": {"allOf": [_set(a, props), _set(b, props)]}}
              for i, (m, fields) in enumerate(own.items()) for other in list(own)[i + 1:]
              for a in fields for b in own[other] if m != other]
    return rules  # refine's need of fast_model is left to the text: a rerun may take fast_model from its job


def _image(settings: Any, examples: list[str]) -> dict[str, Any]:
    named = sorted({*examples, *(e.rsplit(".", 1)[0] for e in examples)})
    return {"anyOf": [
        {"type": "string", "format": "binary", "maxLength": settings.max_upload_bytes,
         "description": f"an image file (PNG, JPEG, WebP, ...) of at most {settings.max_upload_mb:g} MB"},
        {"type": "string", "enum": named, "description": "a bundled example (GET /api/examples)"},
        {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$", "description": "an image uploaded before"},
    ]}


def _submission(schema: dict[str, Any], settings: Any, examples: list[str]) -> None:
    op = schema["paths"]["/api/jobs"]["post"]
    image = _image(settings, examples)
    op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["content"], "additionalProperties": False,
        "properties": {
            "content": {**image, "description": "the photo: a file, the name of a bundled example, or sha256:DIGEST "
                                                "of an image uploaded before"},
            "style": {"type": "array", "maxItems": settings.max_styles, "items": image,
                      "description": "the paintings (repeat the field), each as for content: at least one for a "
                                     "method that takes paintings (optimise, universal), none with a fast model"},
            "options": {"$ref": "#/components/schemas/Options",
                        "description": "the run options as a JSON object, e.g. {\"size\": 256, \"iterations\": 20}"},
        }},
        "encoding": {"options": {"contentType": "application/json"}},
        "example": _example(settings, examples)}}}
    op.setdefault("parameters", []).extend(_headers())


def _example(settings: Any, examples: list[str]) -> dict[str, Any]:
    """A submission that runs on this server: two bundled examples, a small output, few iterations."""
    stems = [e.rsplit(".", 1)[0] for e in examples]
    photo = "chelsea" if "chelsea" in stems else stems[0]
    painting = "starry_night" if "starry_night" in stems else stems[-1]
    return {"content": photo, "style": [painting],
            "options": {"size": min(64, settings.max_size), "iterations": min(2, settings.max_iterations)}}


def _headers() -> list[dict[str, Any]]:
    return [
        {"name": "Idempotency-Key", "in": "header", "required": False,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
         "description": "a retried submission with the same key answers the job made first (200)"},
        {"name": "X-Restyle-Client", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "who the job is for, for --max-queued-per-client (else the address); its first 64 "
                        "characters count"},
    ]


def _rerun(schema: dict[str, Any]) -> None:
    op = schema["paths"]["/api/jobs/{job_id}/rerun"]["post"]
    op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
        "anyOf": [{"type": "object", "additionalProperties": False,
                   "properties": {"options": {"anyOf": [{"$ref": "#/components/schemas/Options"}, {"type": "null"}],
                                              "description": "options that replace the job's own"}}},
                  {"type": "null"}]},
        "example": {"options": {"seed": 1}}}}}
    op.setdefault("parameters", []).extend(_headers())


def _links(schema: dict[str, Any]) -> None:
    """Links from a new job (201) to its routes, for generated clients and stateful testing."""
    links = {}
    for name, (method, tail) in LINKED.items():
        target = schema["paths"].get("/api/jobs/{job_id}" + tail, {}).get(method)
        if target is None:
            continue
        parameters = {"job_id": "$response.body#/id"}  # an input index is generated
        links[name] = {"operationId": target["operationId"], "parameters": parameters}
    schema["paths"]["/api/jobs"]["post"]["responses"]["201"]["links"] = links
