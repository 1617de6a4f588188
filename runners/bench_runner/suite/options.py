"""Validation of suite tables and benchmark settings with pydantic, and its error messages.

Every table of a suite file, and the settings of every built-in kind, is a pydantic model that
forbids unknown keys and does not coerce types (TOML already gives the right ones). A
validation error becomes an `OptionError` that names the key (`commands[0]`, `params.isl`) and
says what was wrong in a sentence; `format` adds the file and the table.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from .spec import BenchmarkSpec

KeyPath = tuple[str | int, ...]


class OptionError(ValueError):
    """A setting is wrong: `path` locates the key in its table, `message` says why."""

    def __init__(self, path: KeyPath, message: str, *, unknown: bool = False) -> None:
        self.path = path
        self.message = message
        self.unknown = unknown
        super().__init__(str(self))

    @property
    def key(self) -> str:
        return render_path(self.path)

    def __str__(self) -> str:
        if self.unknown:
            return f"unknown key {self.key!r}" + (f" ({self.message})" if self.message else "")
        return f"{self.key}: {self.message}" if self.path else self.message

    def under(self, *prefix: str | int) -> OptionError:
        """The same error with its key inside `prefix` (`isl` -> `params.isl`)."""
        return OptionError((*prefix, *self.path), self.message, unknown=self.unknown)

    def split(self, depth: int = 1) -> tuple[KeyPath, OptionError]:
        """(the first `depth` parts of the path, the error relative to them)."""
        return self.path[:depth], OptionError(self.path[depth:], self.message, unknown=self.unknown)


def render_path(path: KeyPath) -> str:
    """("commands", 0) -> "commands[0]"; ("env", "FOO") -> "env.FOO"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def invalid(key: str, message: str) -> PydanticCustomError:
    """Raise from a validator to blame `key` of the model (or of the field) being validated."""
    return PydanticCustomError("option", "{key}: {message}", {"key": key, "message": message})


class Table(BaseModel):
    """A table of a suite file, or a kind's settings: unknown keys and coercion refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- turning pydantic's errors into sentences ---------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "finite_number": "a finite number",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sentence(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f", got {error['input']!r}"
    if kind == "missing":
        return "required"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}{got}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {_number(bound)}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "value_error":
        return str(ctx["error"])
    return str(error["msg"])


def _fields_at(model: type[BaseModel], path: KeyPath) -> list[str]:
    """The keys a table at `path` inside `model` allows ([] when that is not a model)."""
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        inner = [t for t in (field.annotation, *get_args(field.annotation)) if _is_model(t)]
        if not inner:
            return []
        model = inner[0]
    return list(model.model_fields)


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def unknown_key_hint(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"allowed: {', '.join(sorted(allowed))}" if allowed else ""


def first_error(exc: ValidationError, model: type[BaseModel]) -> OptionError:
    """The first error of a validation of `model`, as an OptionError."""
    error = exc.errors()[0]
    path: KeyPath = tuple(error["loc"])
    if error["type"] == "option":
        ctx = error.get("ctx") or {}
        return OptionError((*path, ctx["key"]), str(ctx["message"]))
    if error["type"] == "extra_forbidden":
        name = str(path[-1])
        return OptionError(path, unknown_key_hint(name, _fields_at(model, path[:-1])), unknown=True)
    return OptionError(path, _sentence(error))


M = TypeVar("M", bound=BaseModel)


def validate_table(model: type[M], data: Any) -> M:
    """`model` from `data`; OptionError for the first thing wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, model) from exc


def read_options(spec: BenchmarkSpec, model: type[M], *, with_params: bool = True) -> M:
    """A kind's settings: the keys beside the common ones of its `[[benchmark]]` and, with
    `with_params`, its `[benchmark.params]` (a key may be in one of them, not both).

    Errors name the key as the suite has it: `params.isl` or `base_url` (a missing key, or one
    a rule between keys blames, is named as a param)."""
    if not with_params:
        return validate_table(model, spec.options)
    both = sorted(set(spec.options) & set(spec.params))
    if both:
        raise OptionError((both[0],), "given both beside the common keys and in params; keep one")
    try:
        return validate_table(model, {**spec.options, **spec.params})
    except OptionError as exc:
        if exc.path and exc.path[0] not in spec.options:
            raise exc.under("params") from exc
        raise


# -- value types shared by the tables ----------------------------------------------------------


def _one_or_many(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _http_url(value: Any) -> Any:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value


def _command(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return value
    raise ValueError(
        f"must be a non-empty string (run by /bin/sh) or a list of strings (argv), got {value!r}"
    )


def _env(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f'must be a table of NAME = "value", got {value!r}')
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise invalid(name, f"must be a string or number, got {item!r}")
    return {name: str(item) for name, item in value.items()}


def _rates(value: Any) -> Any:
    return [math.inf if x == "inf" else x for x in _one_or_many(value)]


PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = PositiveFloat
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
# A command: a string run by /bin/sh, or an argv list.
Command = Annotated[str | list[str], BeforeValidator(_command)]
# Environment variables: NAME = "value" (numbers are written as strings).
Env = Annotated[dict[str, str], BeforeValidator(_env)]
# A string or a non-empty list of strings.
Strings = Annotated[list[str], BeforeValidator(_one_or_many), Field(min_length=1)]
# An integer or a non-empty list of them (a sweep).
IntSweep = Annotated[list[PositiveInt], BeforeValidator(_one_or_many), Field(min_length=1)]
# Requests per second: a number > 0 or "inf", or a non-empty list of them.
RateSweep = Annotated[list[Annotated[float, Field(gt=0)]], BeforeValidator(_rates), Field(min_length=1)]
