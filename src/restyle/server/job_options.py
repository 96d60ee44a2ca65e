"""A job's options: the Pydantic model of the run options, generated from :class:`restyle.config.Config`'s
fields and their metadata, so the HTTP API takes exactly the options ``restyle run`` takes.

A field added to Config (a number, a flag, a choice) is an API option with no change here. The
exceptions are decided here: ``device`` belongs to the worker a job runs on, and free-text fields
(``init``, ``weights``, ``masks``, ...) could name files on the server, so they take only the words
in :data:`WORDS_ONLY`; a new free-text field is refused until it is listed there. A field in
:func:`listed` takes a name from a list the server offers (a fast model: ``GET /api/models``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, create_model

from restyle import api
from restyle import config as config_module
from restyle.blend import blend_weights
from restyle.config import Config, check_style_blend, parse_field
from restyle.config.model import MIN_TILE
from restyle.errors import ConfigError
from restyle.spec import DEFAULT_MAX_PIXELS, PRESETS, layer_names

#: Fields a client may not set, and why.
SERVER_SET = {"device": "set by the server: each worker runs on one device (restyle serve --device)"}
#: Free-text fields, and the words they take over HTTP (anything else could be a path on the server).
WORDS_ONLY: dict[str, tuple[str, ...]] = {
    "init": ("content", "noise"),
    "weights": ("embedded", "download"),
    "masks": (), "style_masks": (), "label_image": (),
}

#: The layer names a list or mapping of layers takes (VGG19's; VGG16 lacks the blocks' fourth convs).
LAYERS = [*layer_names("vgg19"), *(f"block{b}_pool" for b in range(1, 6))]
#: The bounds Config.validate (and the server) puts on single fields, as JSON Schema keywords: the
#: schema states them (a test holds each against the checks); rules between fields are in the text.
RANGES: dict[str, dict[str, Any]] = {
    "size": {"minimum": 16}, "max_pixels": {"minimum": 1, "maximum": DEFAULT_MAX_PIXELS},
    "iterations": {"minimum": 0}, "refine": {"minimum": 0}, "seed": {"minimum": 0, "maximum": 2**63 - 1},
    "stop_tolerance": {"exclusiveMinimum": 0, "exclusiveMaximum": 1}, "time_limit": {"exclusiveMinimum": 0},
    "style_scale": {"exclusiveMinimum": 0}, "content_weight": {"minimum": 0}, "style_weight": {"minimum": 0},
    "tv_weight": {"minimum": 0}, "photo_weight": {"minimum": 0}, "strength": {"minimum": 0, "maximum": 1},
    "ema": {"minimum": 0, "exclusiveMaximum": 1}, "tile": {"minimum": MIN_TILE}, "lr": {"exclusiveMinimum": 0},
    "max_memory": {"exclusiveMinimum": 0},
    "style_blend": {"items": {"minimum": 0}, "minItems": 1, "contains": {"exclusiveMinimum": 0}},
    "scales": {"items": {"minimum": 16}, "minItems": 1},
    **{f"{kind}_layers": {"minItems": 1, "minProperties": 1, "items": {"enum": LAYERS}, "propertyNames": {"enum": LAYERS}}
       for kind in ("content", "style")},
}


def listed() -> dict[str, str]:
    """Fields that take the name of a model the server offers (never a path), and where it is listed."""
    return {name: "GET /api/models" for name in api.listed_fields()}


class OptionError(Exception):
    """Options that cannot run: ``errors`` are FastAPI-style ``{"loc", "msg", "type"}`` items."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors))
        self.errors = errors


def _free_text(name: str) -> bool:
    hint, _ = _base(name)
    origin = typing.get_origin(hint)
    item = typing.get_args(hint)[0] if origin is list else hint
    return item is str and config_module.options()[name].choices is None


def _base(name: str) -> tuple[Any, bool]:
    """(the field's type without None, whether None is allowed)."""
    return config_module.field_type(name)


@functools.cache
def _free_text_cached(name: str) -> bool:
    return _free_text(name)


@functools.cache
def api_fields() -> list[str]:
    """The run options a client may set (Config's run fields less :data:`SERVER_SET`)."""
    return [n for n in config_module.run_fields() if n not in SERVER_SET]


@functools.cache
def dataclasses_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Config)}


def _default(f: dataclasses.Field[Any]) -> dict[str, Any]:
    if f.default_factory is not dataclasses.MISSING:
        return {"default_factory": f.default_factory}
    return {"default": f.default}


@functools.cache
def options_model() -> type[BaseModel]:
    """The Pydantic model of a job's ``options`` (unknown fields refused)."""
    fields: dict[str, Any] = {}
    dc_fields = dataclasses_fields()
    for name in api_fields():
        opt = config_module.options()[name]
        base, nullable = _base(name)
        kind = config_module.value_kind(name)
        hint: Any
        if name in listed():
            hint = str  # checked against the server's list by parse_options
        elif name == "method":
            hint = Literal[tuple(api.methods())]
        elif name in WORDS_ONLY and WORDS_ONLY[name]:
            hint = Literal[WORDS_ONLY[name]]
        elif _free_text(name):
            hint = None.__class__  # a path on the server: only null
        elif opt.choices is not None:
            hint = Literal[opt.choices]
        elif kind == "layers":
            hint = Union[dict[str, float], list[str]]
        elif any(isinstance(v, str) for _, v in opt.words):  # a word that is a value of its own ("auto")
            hint = Union[base, Literal[tuple(v for _, v in opt.words if isinstance(v, str))]]
        else:
            hint = base
        hint = _numbers_only(hint)
        if nullable:
            hint = Optional[hint]
        description = opt.help + (f" (command line: {opt.flags[0]})" if opt.flags else "")
        fields[name] = (hint, Field(description=description, json_schema_extra=RANGES.get(name),
                                    **_default(dc_fields[name])))
    for name, (method, own) in api.method_options().items():  # a method's own options, by name
        own_hint: Any = None.__class__ if own.file else Literal[own.choices] if own.choices else _numbers_only(own.type)
        fields[name] = (Optional[own_hint], Field(  # a file: only null over HTTP
            default=None, description=f"with method {method.name}: {own.help}",
            json_schema_extra=None if own.minimum is None else {"minimum": own.minimum}))
    fields["preset"] = (Optional[Literal[tuple(PRESETS)]], Field(
        default=None, description=config_module.options()["preset"].help + "; the other options apply over it"))
    model = create_model("Options", __config__=ConfigDict(extra="forbid"), **fields)
    model.__doc__ = "Run options: the fields of restyle.config.Config (restyle run's options)."
    return model


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


def _numbers_only(hint: Any) -> Any:
    """``hint`` with its int and float parts refusing true and false, and its bool refusing 0 and 1 (Pydantic's
    lax mode takes each for the other; the schema does not)."""
    if hint is bool:
        return StrictBool  # and true or false only, not 0 and 1
    if hint in (int, float):
        return Annotated[hint, BeforeValidator(_not_bool)]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args and args[0] in (int, float):
        return list[Annotated[args[0], BeforeValidator(_not_bool)]]  # type: ignore[valid-type]
    if origin is Union:
        return Union[tuple(_numbers_only(a) for a in args)]
    return hint


def _loc(name: str) -> list[Any]:
    return ["body", "options", name]


def check_fields(raw: str | dict[str, Any] | None, models: Mapping[str, Sequence[str]] | None = None,
                 caps: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Each option alone: its name, its type, a name the server offers, its bounds (:data:`RANGES`, and
    ``caps``: {field: most}). Returns the values given (text parsed); raises :class:`OptionError`."""
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise OptionError([{"loc": ["body", "options"], "msg": f"not valid JSON ({err})", "type": "json"}]) from None
    if not isinstance(raw, dict):
        raise OptionError([{"loc": ["body", "options"], "msg": "must be a JSON object of option names and values",
                            "type": "dict_type"}])
    values = dict(raw)
    errors: list[dict[str, Any]] = []
    for name, value in list(values.items()):
        if name in SERVER_SET:
            errors.append({"loc": _loc(name), "msg": SERVER_SET[name], "type": "server_set"})
        elif name in listed():
            if value is not None and (not isinstance(value, str) or value not in (models or {})):
                offered = ", ".join(models or {}) or "none"
                errors.append({"loc": _loc(name), "type": "unknown_name", "msg": f"no {name.replace('_', ' ')} "
                               f"'{str(value)[:80]}' on this server; choose one of: {offered} ({listed()[name]})"})
        elif name == "method":
            if value is not None and (not isinstance(value, str) or value not in api.methods()):
                errors.append({"loc": _loc(name), "type": "unknown_name", "msg": f"unknown method "
                               f"'{str(value)[:80]}'; choose one of: {', '.join(api.methods())}"})
        elif name in api_fields() and _free_text_cached(name) and value is not None \
                and value not in WORDS_ONLY.get(name, ()):
            words = " or ".join(WORDS_ONLY.get(name, ())) or "only null"
            errors.append({"loc": _loc(name), "msg": f"takes {words} over HTTP (a path would name a file on the "
                           "server)", "type": "server_path"})
        elif name in api_fields() and isinstance(value, str) and config_module.value_kind(name) != "str":
            try:
                values[name] = parse_field(name, value, label=name)
            except ConfigError as err:
                errors.append({"loc": _loc(name), "msg": str(err), "type": "value_error"})
    if errors:
        raise OptionError(errors)
    try:
        given: dict[str, Any] = options_model().model_validate(values).model_dump(exclude_unset=True)
    except ValidationError as err:
        raise OptionError([{"loc": ["body", "options", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                           for e in err.errors(include_url=False)]) from None
    errors = [{"loc": _loc(name), "msg": msg, "type": "value_error"} for name, msg in _bound_errors(given, caps or {})]
    if errors:
        raise OptionError(errors)
    return given


def _bound_errors(values: Mapping[str, Any], caps: Mapping[str, int]) -> list[tuple[str, str]]:
    """(field, why) for each value outside its bounds in :data:`RANGES` or over its cap, in Config's
    words where Config refuses the value alone, else in the schema's."""
    out = []
    for name, why in _outside_bounds(values, caps):
        over = _outside_bounds({name: values[name]}, {name: caps[name]}) if name in caps else []
        if name in caps and not _outside_bounds({name: values[name]}, {}) and over:
            why = f"{why}: this server's cap (--max-{'size' if name in ('size', 'scales') else 'iterations'})"
        else:
            try:
                Config.from_values({name: values[name]})
            except ConfigError as err:
                why = str(err)
        out.append((name, why))
    return out


def _outside_bounds(values: Mapping[str, Any], caps: Mapping[str, int]) -> list[tuple[str, str]]:
    out = []
    for name, value in values.items():
        rule = copy.deepcopy(RANGES.get(name, {}))
        if name in caps:
            (rule.setdefault("items", {}) if name == "scales" else rule)["maximum"] = caps[name]
        if value is None or not rule:
            continue
        if isinstance(value, dict):
            if len(value) < rule.get("minProperties", 0):
                out.append((name, f"give at least {rule['minProperties']} name(s)"))
            value = list(value)  # its names, checked as a list's items
            rule["items"], rule["minItems"] = rule.get("propertyNames", {}), 0
        if isinstance(value, list):
            if len(value) < rule.get("minItems", 0):
                out.append((name, f"give at least {rule['minItems']} value(s)"))
            elif "contains" in rule and not any(_outside(v, rule["contains"]) is None for v in value):
                out.append((name, f"at least one value must be > {rule['contains']['exclusiveMinimum']}"))
            why = next((w for w in (_outside(v, rule.get("items", {})) for v in value) if w), None)
        else:
            why = _outside(value, rule)
        if why:
            out.append((name, why))
    return out


def _outside(value: Any, rule: Mapping[str, Any]) -> str | None:
    """Why a number breaks a JSON Schema bound in ``rule`` (None: it keeps them, or is no number)."""
    if "enum" in rule and value not in rule["enum"]:
        return f"'{str(value)[:40]}' is not one of: {', '.join(map(str, rule['enum']))}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    for key, broken, word in (("minimum", value < rule.get("minimum", value), ">="),
                              ("exclusiveMinimum", value <= rule.get("exclusiveMinimum", value - 1), ">"),
                              ("maximum", value > rule.get("maximum", value), "<="),
                              ("exclusiveMaximum", value >= rule.get("exclusiveMaximum", value + 1), "<")):
        if key in rule and broken:
            return f"must be {word} {rule[key]}, got {value}"
    return None


def parse_options(raw: str | dict[str, Any] | None, styles: int,
                  models: Mapping[str, Sequence[str]] | None = None) -> tuple[dict[str, Any], str | None, Config]:
    """Check a job's options (JSON text or a dict) for ``styles`` style images: the values the client
    gave, the preset, and the Config the job runs with. Raises :class:`OptionError` naming each bad field.
    ``models``: the models on offer, by name, with the names of the styles each holds; a
    listed field's value must be one of them, and a ``style_blend`` then gives one weight per style it holds.

    Text values of typed fields go through :func:`restyle.config.parse_field` (the CLI's one text
    parser): ``{"size": "none"}``, ``{"style_layers": "seed"}`` and ``{"style_blend": "0.7,0.3"}`` work."""
    given = check_fields(raw, models)
    errors: list[dict[str, Any]] = []
    preset = given.pop("preset", None)
    own = {k: given.pop(k) for k in list(given) if k in api.method_options()}  # null: the method's default
    own = {k: v for k, v in own.items() if v is not None}
    if own:
        given["method_options"] = own
    if given.get("max_pixels", DEFAULT_MAX_PIXELS) is None or given.get("max_pixels", 0) > DEFAULT_MAX_PIXELS:
        errors.append({"loc": _loc("max_pixels"), "msg": f"at most {DEFAULT_MAX_PIXELS} on this server",
                       "type": "less_than_equal"})
    # each field alone (over the preset, with the fields its check reads): the error names its field
    context: dict[str, Any] = {k: given[k] for k in ("model", "method", *listed()) if k in given}
    for name, value in given.items():
        try:
            Config.from_values({**context, name: value}, preset=preset)
        except ConfigError as err:
            errors.append({"loc": _loc(name), "msg": str(err), "type": "value_error"})
    if errors:
        raise OptionError(errors)
    try:
        config = Config.from_values(given, preset=preset)
        api.method_for(config)  # the options name one method
    except ConfigError as err:
        raise OptionError([{"loc": ["body", "options"], "msg": str(err), "type": "value_error"}]) from None
    try:
        chosen = [getattr(config, f) for f in listed() if getattr(config, f) is not None]
        if chosen:
            _check_model_blend(chosen[0], list((models or {})[chosen[0]]), config.style_blend)
        else:
            check_style_blend(config.style_blend, styles)
    except ConfigError as err:
        raise OptionError([{"loc": _loc("style_blend"), "type": "value_error",
                            "msg": str(err).removeprefix("--style-blend ")}]) from None
    return given, preset, config


def _check_model_blend(model: str, held: list[str], blend: Sequence[float] | None) -> None:
    """Refuse a blend that does not give one weight per style the fast model holds (None: always fits)."""
    if blend is not None:
        blend_weights(blend, held, what="--style-blend", holder=f"the fast model '{model}'")


def describe() -> dict[str, Any]:
    """The options for a form: per field its kind, default, choices, help and group, in Config's order,
    with the JSON schema of the model (``GET /api/options``)."""
    out = []
    for name in api_fields():
        if name in WORDS_ONLY and not WORDS_ONLY[name]:
            continue  # cannot be set over HTTP
        opt = config_module.options()[name]
        _, nullable = _base(name)
        choices = WORDS_ONLY.get(name) or opt.choices or (tuple(api.methods()) if name == "method" else None)
        f = dataclasses_fields()[name]
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append({"name": name, "kind": config_module.value_kind(name), "nullable": nullable,
                    "default": config_module.shown_default(name), "value": value, "metavar": opt.metavar, "choices": list(choices) if choices else None,
                    "help": opt.help, "group": opt.group, "flag": opt.flags[0] if opt.flags else None})
    methods = [{"name": m.name, "summary": m.summary, "paintings": m.paintings, "one_pass": m.one_pass,
                "options": [o.name for o in m.options]} for m in api.methods().values()]
    for name, (method, own) in api.method_options().items():
        if not own.file:
            shown = None if own.default is None else str(own.default)
            out.append({"name": name, "kind": own.type.__name__, "nullable": True, "default": shown,
                        "value": own.default, "metavar": own.metavar, "choices": None, "help": own.help,
                        "group": f"method {method.name}", "flag": own.flag})
    return {"fields": out, "presets": list(PRESETS), "methods": methods,
            "schema": options_model().model_json_schema()}
