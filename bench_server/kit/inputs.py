"""Field types for request bodies that refuse what the database or the JSON encoder would
choke on later: control characters in names (PostgreSQL refuses NUL in text at all), and in
free-form JSON NaN, infinities, integers beyond 64 bits and nesting deeper than anyone needs.
Each refusal is a validation error that names the field, never a 500 at the INSERT."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
# Free-form objects (params, fingerprint, context) nest at most this deep.
MAX_JSON_DEPTH = 32

# One line of printable text: no C0 control characters, no DEL.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# Text that may span lines (messages, logs): tabs and line breaks, no other control characters.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def canonical_json_value(value: Any, path: str = "", depth: int = 0) -> Any:
    """The value with every object's keys sorted, or ValueError naming where it is not plain JSON.

    Free-form objects are stored and hashed in this form, so two bodies that differ only in key
    order are the same body.
    """
    where = path or "the object"
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, dict):
        out = {}
        for key in sorted(value):
            if "\x00" in key:
                raise ValueError(f"{where}: a key contains a NUL character")
            out[key] = canonical_json_value(value[key], f"{path}.{key}" if path else key, depth + 1)
        return out
    if isinstance(value, list):
        return [canonical_json_value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not MIN_INT64 <= value <= MAX_INT64:
            raise ValueError(f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a JSON number (NaN and infinities are refused)")
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: text contains a NUL character")
        return value
    raise ValueError(f"{where}: {type(value).__name__} is not JSON")


def _canonical_object(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = canonical_json_value(value)
    return result


# A free-form JSON object, checked and key-sorted.
JsonObject = Annotated[dict[str, Any], AfterValidator(_canonical_object)]
