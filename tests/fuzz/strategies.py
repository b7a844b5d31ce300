"""Hypothesis strategies for the fuzzers: AdmissionReview bodies and Pod shapes.

- `valid_reviews()`: well-formed reviews of pods the Kubernetes schema accepts, in the shapes
  the webhook cares about (existing /dev/shm mounts and `dshm` volumes, sidecars, memory
  requests and limits, pod-level resources, earlier status annotations, opt-outs);
- `corrupted_bodies()`: such a review broken at a named level (`LEVELS`: from the envelope down
  to a memory quantity) by a wrong type, a missing key, a huge string or array, deep nesting, a
  token orjson refuses (NaN, Infinity, invalid UTF-8, lone surrogates) or a duplicate key;
- `mangled_bodies()`: a review's bytes truncated, spliced, re-encoded or replaced (empty, BOM,
  UTF-16, 10,000-deep arrays, random bytes).

Bodies are written by `encode`, which also writes what orjson will not: `Raw` JSON text
spliced in as is, and `Pairs`, an object that may repeat a key. Bodies are drawn as `Body`
(the bytes in `.data`), whose repr stays short however large the body is: hypothesis prints
falsifying examples.
"""

from __future__ import annotations

import codecs
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from webhook.mutation import DEFAULT_CONTAINER_ANNOTATION, MIRROR_ANNOTATION
from webhook.quantity import parse, to_bytes
from webhook.status import STATUS_ANNOTATION

Path = tuple[str | int, ...]


class Body:
    """A request body whose repr shows its size and head, not megabytes of it (not a dataclass:
    hypothesis would print a dataclass field by field)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        more = "…" if len(self.data) > 160 else ""
        return f"Body({self.data[:160]!r}{more}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class Raw:
    """JSON text written as is (what orjson refuses to write, or too deep for it to write)."""

    text: bytes
    label: str

    def __repr__(self) -> str:
        return f"Raw({self.label})"


@dataclass(frozen=True)
class Pairs:
    """A JSON object written member by member, so a key may appear twice."""

    items: tuple[tuple[str, Any], ...]


def encode(value: Any) -> Body:
    return Body(_encode(value))


def _encode(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs | dict):
        items = value.items if isinstance(value, Pairs) else value.items()
        return b"{" + b",".join(orjson.dumps(k) + b":" + _encode(v) for k, v in items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_encode(item) for item in value) + b"]"
    return orjson.dumps(value)


# --- valid pods and reviews -------------------------------------------------------------------

DNS_LABELS = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from("abcxyz"),
    st.text("abz09-", max_size=8),
    st.sampled_from(["0", "a", "9z"]),
)
CONTAINER_NAMES = st.sampled_from(["main", "worker", "proxy", "init", "dshm", "x-1"]) | DNS_LABELS
VOLUME_NAMES = st.sampled_from(["data", "dshm", "cache", "dshm-1", "shm", "dshm-2"]) | DNS_LABELS
MOUNT_PATHS = st.sampled_from(
    ["/data", "/cache", "/dev/shm", "/tmp", "/dev/shm/", "/dev//shm", "/dev/shm/sub", "/shm"]
)
MEMORY = st.sampled_from(
    ["1Gi", "128Mi", "2Gi", "1G", "1500M", "4096Mi", "64Mi", "1e9", "1.5Gi", "100M", "1k", "1"]
)
# What people write in the annotation: sizes, zero, and the mistakes the planner must deny.
# sampled_from favours the first elements: the usual values come first.
SIZES = st.sampled_from(
    ["1Gi", "64Mi", "1.5Gi", "2G", "1e9", "8Gi", "1", "0", "0Gi", "8GB", "-1Gi", "100m", "Gi",
     ".", "1e1000", "9223372036854775807", "8Ei", " 1Gi", "\u0661Gi", "1Gi\n", "0.5", ""]
)  # fmt: skip
VOLUME_SOURCES = st.sampled_from(
    [
        {"emptyDir": {}},
        {"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"configMap": {"name": "settings"}},
        {"persistentVolumeClaim": {"claimName": "data"}},
    ]
)
POLICY_LABEL = st.sampled_from([None, None, None, "enabled", "disabled"])


def rarely(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws. Not `integers(0, n) == 0`: hypothesis favours 0,
    which made the rare case (a mirror pod, a status annotation) common and left the main path,
    a first injection, to 7 % of the pods."""
    return st.sampled_from([False] * (one_in - 1) + [True])


def _by_bytes(text: str) -> int:
    return to_bytes(parse(text))


@st.composite
def memory_resources(draw: st.DrawFn) -> dict[str, Any] | None:
    """A resources block: absent, empty, cpu only, a memory request, limit, or both (request <=
    limit, as the API server requires)."""
    shape = draw(st.sampled_from(["absent", "empty", "cpu", "request", "limit", "both"]))
    if shape == "absent":
        return None
    result: dict[str, Any] = {"requests": {"cpu": "100m"}} if shape == "cpu" else {}
    low, high = sorted((draw(MEMORY), draw(MEMORY)), key=_by_bytes)
    if shape in ("limit", "both"):
        result["limits"] = {"memory": high}
    if shape in ("request", "both"):
        result["requests"] = {"memory": low if shape == "both" else draw(MEMORY)}
    return result


@st.composite
def containers(
    draw: st.DrawFn, *, name: str, volumes: Sequence[dict[str, Any]], init: bool
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "busybox"}
    if volumes:
        paths = draw(st.lists(MOUNT_PATHS, max_size=3, unique=True))
        mounts = [{"name": draw(st.sampled_from(volumes))["name"], "mountPath": p} for p in paths]
        if mounts or draw(st.booleans()):
            container["volumeMounts"] = mounts
        claims = [v["name"] for v in volumes if "persistentVolumeClaim" in v]
        if claims and draw(rarely(5)):
            path = draw(st.sampled_from(["/dev/shm", "/dev/xvda"]))
            container["volumeDevices"] = [{"name": claims[0], "devicePath": path}]
    resources = draw(memory_resources())
    if resources is not None:
        container["resources"] = resources
    if init and draw(st.booleans()):
        container["restartPolicy"] = "Always"  # a sidecar
    return container


@st.composite
def status_annotations(draw: st.DrawFn, *, names: Sequence[str], volumes: Sequence[str]) -> str:
    """What an earlier admission wrote, or something else under the same key."""
    if draw(st.booleans()):
        return draw(st.sampled_from(["", "{", "[]", "null", '{"size": "1Gi"}', "not json"]))
    status = {
        "size": draw(st.sampled_from(["64Mi", "1Gi", "2G"])),
        "volume": "Not A Name!"
        if draw(rarely(10))
        else draw(st.sampled_from([*volumes, "dshm", "dshm-1"])),
        "mounted": draw(st.lists(st.sampled_from(names), unique=True)),
        "charged": draw(st.lists(st.sampled_from(names), max_size=1)),
    }
    return json.dumps(status, separators=(",", ":"))


@st.composite
def valid_pods(draw: st.DrawFn) -> dict[str, Any]:
    """A pod the Kubernetes 1.35 schema accepts (tests/pods.assert_valid_pod)."""
    volumes = [
        {"name": name, **draw(VOLUME_SOURCES)}
        for name in draw(st.lists(VOLUME_NAMES, max_size=4, unique=True))
    ]
    names = draw(st.lists(CONTAINER_NAMES, min_size=1, max_size=6, unique=True))
    split = draw(st.integers(0, len(names) - 1))
    spec: dict[str, Any] = {
        "containers": [draw(containers(name=n, volumes=volumes, init=False)) for n in names[split:]]
    }
    if split:
        spec["initContainers"] = [
            draw(containers(name=n, volumes=volumes, init=True)) for n in names[:split]
        ]
    if volumes or draw(st.booleans()):
        spec["volumes"] = volumes
    pod_resources = draw(memory_resources())
    if pod_resources is not None and draw(rarely(4)):
        spec["resources"] = pod_resources
    if draw(rarely(8)):
        spec["hostIPC"] = draw(st.booleans())
    if draw(rarely(8)):
        spec["os"] = {"name": draw(st.sampled_from(["linux", "windows"]))}

    annotations: dict[str, str] = {}
    if not draw(rarely(4)):
        annotations["shm-size"] = draw(SIZES)
    if draw(st.booleans()):
        annotations[DEFAULT_CONTAINER_ANNOTATION] = draw(st.sampled_from([*names, "missing"]))
    if draw(rarely(4)):
        volume_names = [v["name"] for v in volumes]
        annotations[STATUS_ANNOTATION] = draw(status_annotations(names=names, volumes=volume_names))
    if draw(rarely(16)):
        annotations[MIRROR_ANNOTATION] = "0123456789abcdef"
    metadata: dict[str, Any] = (
        {"name": "trainer"} if draw(st.booleans()) else {"generateName": "trainer-"}
    )
    if annotations or draw(st.booleans()):
        metadata["annotations"] = annotations
    label = draw(POLICY_LABEL)
    if label is not None:
        metadata["labels"] = {"shm-injection": label}
    return {"metadata": metadata, "spec": spec}


POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
POD_RESOURCE = {"group": "", "version": "v1", "resource": "pods"}


@st.composite
def valid_reviews(draw: st.DrawFn) -> dict[str, Any]:
    """An AdmissionReview as the kube-apiserver sends it; mostly a Pod CREATE."""
    pod = draw(valid_pods())
    request: dict[str, Any] = {
        "uid": draw(st.uuids().map(str) | st.text(min_size=1, max_size=40)),
        "kind": POD_KIND,
        "resource": POD_RESOURCE,
        "requestKind": POD_KIND,
        "requestResource": POD_RESOURCE,
        "operation": draw(st.sampled_from(["CREATE"] * 6 + ["UPDATE", "DELETE", "CONNECT"])),
        "namespace": "ml",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": pod,
        "oldObject": None,
        "dryRun": draw(st.booleans()),
    }
    if draw(rarely(8)):
        request["subResource"] = draw(st.sampled_from(["", "status", "ephemeralcontainers"]))
    if draw(rarely(8)):
        request["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    if "name" in pod["metadata"]:
        request["name"] = pod["metadata"]["name"]
    return {
        "apiVersion": draw(st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])),
        "kind": "AdmissionReview",
        "request": request,
    }


# --- wrong values -----------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)  # orjson refuses surrogates
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Strings that look almost right where the webhook reads strings, numbers where it reads
# quantities, and the forms quantity parsing must survive (past 4,300 digits, CPython's limit
# on int <-> str conversions).
PLAUSIBLE = st.sampled_from(
    ["", " ", "0", "-0", "1Gi", "8Ei", "9Ei", "-1", "1e1000", "1e-1000", "1e2147483648",
     "0." + "0" * 40 + "1", "\uff27i", "\u0661", "1Gi ", "\u0000", "None", "{}", "[]", "null",
     "CREATE", "Pod", "pods", "/dev/shm", "dshm", "shm-size", "a/b~c", "admission.k8s.io/v1",
     "9" * 5_000, "1e5000", "-1e5000", "1e99999999999999999999", "0." + "0" * 5_000 + "1"]
) | st.integers(-(2**63), 2**63 - 1)  # fmt: skip

_HUGE_LENGTHS = st.sampled_from([1_000, 100_000, 250_000])


def _huge_array(item: bytes, label: str) -> st.SearchStrategy[Raw]:
    return _HUGE_LENGTHS.map(lambda n: Raw(b"[" + b",".join([item] * n) + b"]", f"{label} x{n}"))


HUGE = st.one_of(
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "9", "é", "[", "/"]), _HUGE_LENGTHS),
    _huge_array(b"{}", "[{}, ...]"),
    _huge_array(b'""', '["", ...]'),
    _huge_array(b"0", "[0, ...]"),
    _huge_array(b'{"name":"c","mountPath":"/dev/shm"}', "[mount, ...]"),
    st.sampled_from([100, 2_000]).map(
        lambda n: [{"name": f"c{i}", "image": "busybox"} for i in range(n)]
    ),
    _HUGE_LENGTHS.map(lambda n: Raw(_many_keys(n // 10), f"{{k0: 0, ...}} x{n // 10}")),
)


def _many_keys(count: int) -> bytes:
    return b"{" + b",".join(b'"k%d":0' % i for i in range(count)) + b"}"


def _deep(depth: int, kind: str) -> Raw:
    if kind == "array":
        return Raw(b"[" * depth + b"]" * depth, f"{depth}-deep array")
    return Raw(b'{"a":' * depth + b"0" + b"}" * depth, f"{depth}-deep object")


# 990-1,020: under orjson's limit of 1,024 levels (the review's own included) wherever they
# land, and over Python's recursion limit of 1,000 for anything that walks them (repr, ==).
DEPTHS = st.sampled_from([100, 254, 255, 990, 1000, 1010, 1020, 1023, 1024, 1025, 10_000, 100_000])
DEEP = st.builds(_deep, DEPTHS, st.sampled_from(["array", "object"])) | DEPTHS.map(
    lambda depth: "[" * depth  # a string that is deeply nested JSON text
)
TOKENS = st.sampled_from(
    [
        Raw(b"NaN", "NaN"),
        Raw(b"Infinity", "Infinity"),
        Raw(b"-Infinity", "-Infinity"),
        Raw(b"1e999", "1e999"),
        Raw(b"-0", "-0"),
        Raw(b"18446744073709551616", "2^64"),
        Raw(b"-9223372036854775809", "-2^63 - 1"),
        Raw(b"1" * 400, "a 400-digit integer"),
        Raw(b'"\\ud800"', "a lone high surrogate escape"),
        Raw(b'"x\\udc00"', "a lone low surrogate escape"),
        Raw(b'"\xff\xfe"', "invalid UTF-8 in a string"),
        Raw(b'"\xc0\xaf"', "an overlong UTF-8 encoding"),
        Raw(b'"\xed\xa0\x80"', "a UTF-8 encoded surrogate"),
        Raw(b'"a\\u0000b"', "an escaped NUL"),
        Raw(b'"a\x00b"', "a raw NUL in a string"),
        Raw(b"\xef\xbb\xbf1", "a BOM inside the document"),
        Raw(b"tru", "tru"),
        Raw(b"01", "a leading zero"),
        Raw(b"+1", "a plus sign"),
        Raw(b".5", ".5"),
        Raw(b"0x10", "hex"),
        Raw(b"'single'", "single quotes"),
        Raw(b"", "nothing"),
    ]
)
WRONG_VALUES = st.one_of(SCALARS, NESTED, PLAUSIBLE, HUGE, DEEP, TOKENS)


# --- corruption at a named level ------------------------------------------------------------

_R: Path = ("request",)
_O: Path = (*_R, "object")
_M: Path = (*_O, "metadata")
_A: Path = (*_M, "annotations")
_S: Path = (*_O, "spec")
_C: Path = (*_S, "containers", 0)
LEVELS: dict[str, Path] = {
    "the whole review": (),
    "apiVersion": ("apiVersion",),
    "kind": ("kind",),
    "request": _R,
    "request.uid": (*_R, "uid"),
    "request.kind": (*_R, "kind"),
    "request.kind.kind": (*_R, "kind", "kind"),
    "request.resource": (*_R, "resource"),
    "request.resource.resource": (*_R, "resource", "resource"),
    "request.operation": (*_R, "operation"),
    "request.subResource": (*_R, "subResource"),
    "request.namespace": (*_R, "namespace"),
    "request.name": (*_R, "name"),
    "request.dryRun": (*_R, "dryRun"),
    "request.object": _O,
    "metadata": _M,
    "metadata.name": (*_M, "name"),
    "metadata.generateName": (*_M, "generateName"),
    "labels": (*_M, "labels"),
    "the shm-injection label": (*_M, "labels", "shm-injection"),
    "annotations": _A,
    "the shm-size annotation": (*_A, "shm-size"),
    "the status annotation": (*_A, STATUS_ANNOTATION),
    "the default-container annotation": (*_A, DEFAULT_CONTAINER_ANNOTATION),
    "the mirror annotation": (*_A, MIRROR_ANNOTATION),
    "spec": _S,
    "spec.hostIPC": (*_S, "hostIPC"),
    "spec.os": (*_S, "os"),
    "spec.os.name": (*_S, "os", "name"),
    "spec.volumes": (*_S, "volumes"),
    "a volume": (*_S, "volumes", 0),
    "a volume name": (*_S, "volumes", 0, "name"),
    "spec.containers": (*_S, "containers"),
    "a container": _C,
    "a container name": (*_C, "name"),
    "volumeMounts": (*_C, "volumeMounts"),
    "a volumeMount": (*_C, "volumeMounts", 0),
    "a mountPath": (*_C, "volumeMounts", 0, "mountPath"),
    "a mount's volume name": (*_C, "volumeMounts", 0, "name"),
    "volumeDevices": (*_C, "volumeDevices"),
    "a devicePath": (*_C, "volumeDevices", 0, "devicePath"),
    "resources": (*_C, "resources"),
    "limits": (*_C, "resources", "limits"),
    "requests": (*_C, "resources", "requests"),
    "a memory limit": (*_C, "resources", "limits", "memory"),
    "a memory request": (*_C, "resources", "requests", "memory"),
    "spec.initContainers": (*_S, "initContainers"),
    "an init container": (*_S, "initContainers", 0),
    "an init container's restartPolicy": (*_S, "initContainers", 0, "restartPolicy"),
    "pod-level resources": (*_S, "resources"),
    "a pod-level memory limit": (*_S, "resources", "limits", "memory"),
}


def set_at(document: Any, path: Path, value: Any) -> Any:
    """`document` with `value` at `path`, creating (or replacing) what lies on the way."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        items = list(document) if isinstance(document, list) else []
        while len(items) <= key:
            items.append({})
        items[key] = set_at(items[key], rest, value)
        return items
    members = dict(document) if isinstance(document, dict) else {}
    members[key] = set_at(members.get(key), rest, value)
    return members


def delete_at(document: Any, path: Path) -> Any:
    """`document` without what is at `path` (unchanged when there is nothing there)."""
    if not path:
        return {}
    key, rest = path[0], path[1:]
    if isinstance(document, list) and isinstance(key, int) and key < len(document):
        items = list(document)
        if rest:
            items[key] = delete_at(items[key], rest)
        else:
            del items[key]
        return items
    if isinstance(document, dict) and isinstance(key, str) and key in document:
        members = dict(document)
        if rest:
            members[key] = delete_at(members[key], rest)
        else:
            del members[key]
        return members
    return document


def duplicate_at(document: Any, path: Path, value: Any, *, first: bool) -> Any:
    """`document` where the object holding `path` repeats its key with `value`, before or
    after the original member (JSON parsers disagree on which one wins)."""
    if len(path) == 0:
        return document
    if len(path) == 1:
        if not isinstance(document, dict):
            return document
        items = tuple(document.items())
        extra = ((str(path[0]), value),)
        return Pairs(extra + items if first else items + extra)
    key = path[0]
    if isinstance(document, dict) and key in document:
        return {**document, key: duplicate_at(document[key], path[1:], value, first=first)}
    if isinstance(document, list) and isinstance(key, int) and key < len(document):
        items = list(document)
        items[key] = duplicate_at(items[key], path[1:], value, first=first)
        return items
    return document


def locations(document: Any, prefix: Path = ()) -> list[Path]:
    """Every path inside `document` (objects and arrays; not the root)."""
    found: list[Path] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(document, dict):
        children = list(document.items())
    elif isinstance(document, list):
        children = list(enumerate(document))
    for key, child in children:
        path = (*prefix, key)
        found.append(path)
        found += locations(child, path)
    return found


@st.composite
def corrupted_bodies(draw: st.DrawFn) -> Body:
    """A valid review broken in one to three places (see the module docstring)."""
    document: Any = draw(valid_reviews())
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:
            path = draw(st.sampled_from(locations(document) or [()]))
        else:
            path = LEVELS[draw(st.sampled_from(sorted(LEVELS)))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
        if action == "replace":
            document = set_at(document, path, draw(WRONG_VALUES))
        elif action == "delete":
            document = delete_at(document, path)
        else:
            value = draw(WRONG_VALUES)
            document = duplicate_at(document, path, value, first=draw(st.booleans()))
    return encode(document)


# --- byte-level mangling ----------------------------------------------------------------------

WHOLE_BODIES = st.sampled_from(
    [b"", b" ", b"\n\t ", b"null", b"true", b"0", b'"x"', b"[]", b"{}", b"\xef\xbb\xbf",
     b"\x00", b"{" * 10_000, b"[" * 10_000 + b"]" * 10_000, b"[" * 100_000]
) | st.binary(max_size=300)  # fmt: skip


@st.composite
def _mangle(draw: st.DrawFn, body: bytes) -> bytes:
    how = draw(
        st.sampled_from(
            ["bom", "utf-16", "utf-32", "truncate", "insert", "overwrite", "append", "nest",
             "dup-request", "dup-uid"]
        )
    )  # fmt: skip
    at = draw(st.integers(0, len(body)))
    if how == "bom":
        return codecs.BOM_UTF8 + body
    if how in ("utf-16", "utf-32"):
        return body.decode("utf-8", "replace").encode(how)
    if how == "truncate":
        return body[:at]
    junk = draw(
        st.sampled_from([b"\xff", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\x00", b'"', b"}"])
        | st.binary(min_size=1, max_size=8)
    )
    if how == "insert":
        return body[:at] + junk + body[at:]
    if how == "overwrite":
        return body[:at] + junk + body[at + len(junk) :]
    if how == "append":
        return body + draw(st.sampled_from([junk, b" ", b"\n", b"{}", body]))
    if how == "nest":
        depth = draw(DEPTHS)
        return b"[" * depth + body + b"]" * depth
    member = b'"request":"x"' if how == "dup-request" else b'"uid":""'
    inner = body.rfind(b"}", 0, len(body) - 1) if how == "dup-uid" else len(body) - 1
    if inner <= 0 or not body.endswith(b"}"):
        return body
    return body[:inner] + b"," + member + body[inner:]


@st.composite
def mangled_bodies(draw: st.DrawFn) -> Body:
    """A review's bytes damaged one to three times, or a body that was never a review."""
    if draw(st.integers(0, 4)) == 0:
        return Body(draw(WHOLE_BODIES))
    body = encode(draw(valid_reviews())).data
    for _ in range(draw(st.integers(1, 3))):
        body = draw(_mangle(body))
    return Body(body)


# --- framing ----------------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [b"application/json"] * 6
    + [b"application/json; charset=utf-8", b"Application/JSON", b" application/json ",
       b"application/json-patch+json", b"text/plain", b"", b"application/jsonx",
       b"application/json;", b"*/*", None]
)  # fmt: skip


def chunked(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`body` cut at the given offsets (out of range ones wrap; repeats give empty chunks)."""
    offsets = sorted(cut % (len(body) + 1) for cut in cuts)
    edges = [0, *offsets, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]
