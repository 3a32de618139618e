"""What crosses between the grader's processes: frames of JSON or bytes, results as .npz.

A child's result is data, never code: JSON plus NumPy arrays (``np.load`` with
``allow_pickle=False``), checked against a schema and size caps in the parent before
anything reads it.  Anything else is that student's error, with a message.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile

import numpy as np

# The sandbox's only writable folder (a size-capped tmpfs).  Not /tmp: the Python
# environment or the course may themselves live under /tmp (a CI clone), and a tmpfs there
# would hide them.
PRIVATE_DIR = "/run/grading"
FRAME_CAP = 96 * 2**20  # bytes of one frame (a result with its arrays, or a JSON header)
RESULT_CAP = 64 * 2**20  # bytes of arrays one exercise may return
MAX_DEPTH = 24  # nesting of a returned value (lists in dicts in tuples ...)


class SchemaError(ValueError):
    """What a child sent is not a well-formed result."""


# ----------------------------------------------------------------------------- frames
def write_frame(fd: int, payload: bytes) -> None:
    data = struct.pack(">I", len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_json(fd: int, obj) -> None:
    write_frame(fd, json.dumps(obj).encode())


def read_exact(fd: int, n: int) -> bytes | None:
    """n bytes from a blocking descriptor; None at end of file."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame_blocking(fd: int, cap: int = FRAME_CAP) -> bytes | None:
    head = read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > cap:
        raise SchemaError(f"a frame of {size} bytes (the cap is {cap})")
    return read_exact(fd, size)


# ----------------------------------------------------------------------------- values
class Opaque:
    """Something that could not cross as an array (a model, a function, ...)."""

    def __init__(self, kind: str, text: str):
        self.kind, self.text = kind, text

    def __repr__(self):
        return self.text

    def __eq__(self, other):
        return isinstance(other, Opaque) and (self.kind, self.text) == (other.kind, other.text)


def encode(value, arrays: dict, depth: int = 0):
    """A JSON-able description of `value`; arrays go into `arrays` (saved with np.savez)."""
    if depth > MAX_DEPTH - 2:
        return {"__opaque__": "nested", "text": "a structure nested too deeply"}
    if hasattr(value, "numpy") and callable(value.numpy) and not isinstance(value, np.ndarray):
        try:
            value = value.numpy()
        except Exception:  # noqa: BLE001 - a symbolic tensor: leave it opaque
            pass
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else value[:100_000]
    if isinstance(value, int):
        return value if abs(value) < 2**53 else {"__bigint__": str(value)[:1000]}
    if isinstance(value, float):
        return value if np.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind == "V":
            return {"__opaque__": "object array", "text": f"an array of Python objects (dtype {array.dtype})"}
        key = f"a{len(arrays)}"
        arrays[key] = array
        return {"__array__" if isinstance(value, np.ndarray) else "__scalar__": key}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, depth + 1) for v in list(value)[:10_000]]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, arrays, depth + 1), encode(v, arrays, depth + 1)] for k, v in list(value.items())[:10_000]]}
    text = f"a {type(value).__module__}.{type(value).__qualname__} object"
    return {"__opaque__": type(value).__name__[:200], "text": text[:500]}


def decode(obj, arrays, depth: int = 0):
    """The inverse of `encode`, strict: anything `encode` cannot produce is a SchemaError."""
    if depth > MAX_DEPTH:
        raise SchemaError("a value nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v, arrays, depth + 1) for v in obj]
    if not isinstance(obj, dict) or len(obj) not in (1, 2):
        raise SchemaError(f"an unexpected value of type {type(obj).__name__}")
    key = next(iter(obj))
    body = obj[key]
    if key in ("__array__", "__scalar__"):
        if not isinstance(body, str) or body not in arrays:
            raise SchemaError("a reference to an array that was not sent")
        return arrays[body] if key == "__array__" else arrays[body][()]
    if key == "__tuple__" and isinstance(body, list):
        return tuple(decode(v, arrays, depth + 1) for v in body)
    if key == "__dict__" and isinstance(body, list):
        out = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise SchemaError("a malformed dict entry")
            out[_hashable(decode(pair[0], arrays, depth + 1))] = decode(pair[1], arrays, depth + 1)
        return out
    if key == "__float__" and body in ("nan", "inf", "-inf"):
        return float(body)
    if key == "__bigint__" and isinstance(body, str) and body.lstrip("-").isdigit():
        return int(body)
    if key == "__opaque__" and isinstance(body, str) and isinstance(obj.get("text"), str):
        return Opaque(body, obj["text"])
    raise SchemaError(f"an unexpected value {key!r}")


def _hashable(key):
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, np.ndarray):
        return key.item() if key.ndim == 0 else tuple(key.tolist())
    if isinstance(key, dict):
        raise SchemaError("a dict used as a key")
    return key


# ----------------------------------------------------------------------------- results
def pack_result(meta: dict, arrays: dict) -> bytes:
    buffer = io.BytesIO()
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buffer, **payload)
    return buffer.getvalue()


def unpack_result(data: bytes) -> tuple[dict, dict]:
    """(meta, arrays) from a child's result bytes, checked; SchemaError otherwise."""
    if not data:
        raise SchemaError("an empty result")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > 100_000 or sum(i.file_size for i in infos) > RESULT_CAP:
                raise SchemaError(f"a result larger than {RESULT_CAP // 2**20} MiB")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except SchemaError:
        raise
    except Exception as err:  # noqa: BLE001 - anything np.load refuses
        raise SchemaError(f"not an .npz of arrays ({type(err).__name__})") from None
    raw = arrays.pop("__meta__", None)
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise SchemaError("no result description")
    for key, array in arrays.items():
        if array.dtype.hasobject or array.dtype.kind == "V":
            raise SchemaError(f"array {key!r} holds Python objects")
    try:
        meta = loads_capped(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SchemaError(f"an unreadable result description ({err})") from None
    meta = _clean_strings(meta)
    check_meta(meta, arrays)
    return meta, arrays


def _clean_strings(obj, depth: int = 0):
    """Lone surrogates (valid in JSON escapes, not in UTF-8) become U+FFFD, everywhere."""
    if depth > MAX_DEPTH * 3 + 8:
        raise SchemaError("a result description nested too deeply")
    if isinstance(obj, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", obj)
    if isinstance(obj, list):
        return [_clean_strings(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {_clean_strings(k, depth + 1): _clean_strings(v, depth + 1) for k, v in obj.items()}
    return obj


def json_depth(text: str) -> int:
    """The deepest nesting of brackets in a JSON text (strings skipped)."""
    depth = best = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            best = max(best, depth)
        elif token in "]}":
            depth -= 1
    return best


def loads_capped(text: str, max_depth: int = MAX_DEPTH * 3 + 8):
    if json_depth(text) > max_depth:
        raise ValueError(f"nested more than {max_depth} levels deep")
    return json.loads(text)


_INFO_FIELDS = {"type": str, "message": str, "line": (int, type(None)), "text": str, "name": str, "traceback": str}
_META_FIELDS = {
    "stage": str, "runs": list, "error": dict, "internal": dict, "missing": dict, "signature": str,
    "refusals": list, "replaced": list, "stdout_dropped": int, "tampering": list, "earlier_failed": list,
}


def _check_info(info, where):
    if not isinstance(info, dict):
        raise SchemaError(f"{where} is not an error description")
    for key, value in info.items():
        if key not in _INFO_FIELDS or not isinstance(value, _INFO_FIELDS[key]) or isinstance(value, bool):
            raise SchemaError(f"{where} has an unexpected field {str(key)[:40]!r}")


def check_meta(meta, arrays) -> None:
    """The schema of a result: known fields with their types; every value decodes."""
    if not isinstance(meta, dict):
        raise SchemaError("the result description is not an object")
    for key, value in meta.items():
        if key not in _META_FIELDS or not isinstance(value, _META_FIELDS[key]) or isinstance(value, bool):
            raise SchemaError(f"unexpected field {str(key)[:40]!r} in the result")
    for key in ("error", "internal"):
        if key in meta:
            _check_info(meta[key], key)
    for key in ("refusals", "replaced", "tampering", "earlier_failed"):
        if not all(isinstance(v, str) for v in meta.get(key, [])):
            raise SchemaError(f"{key} must be a list of strings")
    missing = meta.get("missing")
    if missing is not None:
        if set(missing) - {"defined", "kind"} or not all(isinstance(d, str) for d in missing.get("defined", [])):
            raise SchemaError("a malformed `missing` entry")
        if not isinstance(missing.get("kind"), (str, type(None))):
            raise SchemaError("a malformed `missing` entry")
    for run in meta.get("runs", []):
        if not isinstance(run, dict) or set(run) != {"seed", "cases"} or not isinstance(run["seed"], int) \
                or not isinstance(run["cases"], list):
            raise SchemaError("a malformed run")
        for entry in run["cases"]:
            if not isinstance(entry, dict) or set(entry) - {"output", "after", "error", "describe_error"}:
                raise SchemaError("a malformed test case")
            for key in ("error", "describe_error"):
                if key in entry:
                    _check_info(entry[key], key)
            for key in ("output", "after"):
                if key in entry:
                    decode(entry[key], arrays)
