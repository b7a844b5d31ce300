"""What the differential test compares: a pod created with a server-side dry run, as the
kube-apiserver answered it, and the field-by-field differences between two such answers.

Owns: `DryRun` (POST a pod with `dryRun=All` over HTTPS as the admin; the stored object or the
refusal, and the warnings), `Seen` (an answer with what differs by construction between two
namespaces removed), `seen` (an answer normalised: the engines' own prefixes on denials and
warnings taken off, and named as the systematic differences they are) and `differences`.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The engines' wrappers around the same message; the parity table names each (docs).
WEBHOOK_DENIAL = re.compile(
    r'^admission webhook "[^"]+" denied the request: (?P<message>.*)$', re.S
)
POLICY_DENIAL = re.compile(
    r"^.*?ValidatingAdmissionPolicy '[^']+' with binding '[^']+' denied request: (?P<message>.*)$",
    re.S,
)
POLICY_WARNING = re.compile(
    r"^Validation failed for ValidatingAdmissionPolicy '[^']+' with binding '[^']+': "
    r"(?P<message>.*)$",
    re.S,
)
DENIAL_STATUS = "denial-status"  # 400 BadRequest from the webhook, 422 Invalid from a policy
WARNING_PREFIX = "warning-prefix"
DENIAL_PREFIX = "denial-prefix"
VOLATILE = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "namespace",
    "managedFields",
    "generation",
)


@dataclass(frozen=True)
class Answer:
    code: int
    body: dict[str, Any]
    warnings: list[str]


class DryRun:
    """Pod creations with `dryRun=All`, straight to the kube-apiserver (kubectl would cost a
    process per pod; the answer is the same object kubectl prints)."""

    def __init__(self, url: str, token: str, ca_file: Path) -> None:
        self.url = url
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def create(self, namespace: str, pod: dict[str, Any]) -> Answer:
        query = urllib.parse.urlencode({"dryRun": "All", "fieldManager": "parity"})
        request = urllib.request.Request(
            f"{self.url}/api/v1/namespaces/{namespace}/pods?{query}",
            data=json.dumps(pod).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return _answer(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as error:
            with error:
                return _answer(error.code, error.read(), error.headers)


def _answer(code: int, body: bytes, headers: Any) -> Answer:
    return Answer(
        code, json.loads(body), [_warning(text) for text in headers.get_all("Warning") or []]
    )


def _warning(header: str) -> str:
    """The text of a `299 - "text"` Warning header (RFC 7234 quoted-string, UTF-8)."""
    match = re.fullmatch(r'299 - "(?P<text>.*)"', header, re.S)
    assert match, f"not a Warning header: {header!r}"
    text = re.sub(r"\\(.)", r"\1", match["text"])
    return text.encode("latin-1").decode("utf-8")


@dataclass
class Seen:
    """One engine's answer, comparable with the other's."""

    outcome: str  # "stored" or "refused"
    pod: dict[str, Any] | None
    code: int
    message: str
    warnings: list[str]
    systematic: set[str] = field(default_factory=set)  # table ids its normalisation applied


def seen(answer: Answer, *, namespace: str, engine: str) -> Seen:
    """`answer` with the namespace's name, the volatile metadata and the engine's own prefix
    on denials and warnings taken off."""
    systematic: set[str] = set()
    warnings = []
    for text in answer.warnings:
        match = POLICY_WARNING.match(text) if engine == "policy" else None
        if match:
            systematic.add(WARNING_PREFIX)
            text = match["message"]
        warnings.append(text.replace(namespace, "<namespace>"))
    if answer.code == 201:
        pod = json.loads(json.dumps(answer.body).replace(namespace, "<namespace>"))
        metadata = pod["metadata"]
        for key in VOLATILE:
            metadata.pop(key, None)
        if "generateName" in metadata:
            metadata.pop("name")
        return Seen("stored", pod, answer.code, "", warnings, systematic)
    message = str(answer.body.get("message", ""))
    pattern = WEBHOOK_DENIAL if engine == "webhook" else POLICY_DENIAL
    match = pattern.match(message)
    if match:
        systematic.add(DENIAL_PREFIX)
        message = match["message"]
    code = answer.code
    if match and (engine, code) in (("webhook", 400), ("policy", 422)):
        systematic.add(DENIAL_STATUS)
        code = 0  # an engine's refusal, whichever code its kind answers
    return Seen(
        "refused", None, code, message.replace(namespace, "<namespace>"), warnings, systematic
    )


def differences(webhook: Seen, policy: Seen) -> list[str]:
    """Every field where the two answers differ, as `path: webhook value != policy value`."""
    found: list[str] = []
    for name in ("outcome", "code", "message", "warnings"):
        _walk(name, getattr(webhook, name), getattr(policy, name), found)
    _walk("pod", webhook.pod, policy.pod, found)
    return found


def _walk(path: str, left: Any, right: Any, found: list[str]) -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            _walk(f"{path}.{key}", left.get(key, "<absent>"), right.get(key, "<absent>"), found)
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (one, other) in enumerate(zip(left, right, strict=True)):
            _walk(f"{path}[{index}]", one, other, found)
    elif left != right:
        found.append(f"{path}: {left!r} != {right!r}")
