"""Reading what `shm-webhook check` looks at through the Kubernetes API, as plain JSON.

Owns: `Reader` (the gets and lists the checks need, each answered with the JSON the
kube-apiserver sent rather than the client's models, which drop unknown fields; and the
dry-run create of a pod, with the `Warning` headers of the answer) and `Refused` (an API
error, or an API that cannot be reached, with its HTTP code, the Status message verbatim and a
one-line problem). `rights_hint` words a 403 as the right the check lacks.

The kubernetes client is imported here; only `webhook.diagnose.command` and the modules it
runs import this module, never anything `serve` loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs.cluster import api_problem, unreachable
from webhook.diagnose.probe import parse_warning

REQUEST_TIMEOUT_S = 15.0
# A dry-run create waits for every webhook, each up to its timeoutSeconds (at most 30).
DRY_RUN_TIMEOUT_S = 60.0
PART_OF_LABEL = "app.kubernetes.io/part-of=shm-webhook"  # every object the chart makes

Json = dict[str, Any]


class Refused(Exception):
    """The API said no (code: its HTTP status) or could not be reached (code 0)."""

    def __init__(self, code: int, message: str, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.message = message  # the Status message as the kube-apiserver wrote it
        self.problem = problem  # one line for a person


class Reader:
    """The calls of `check`, on one API client; every answer is the object's JSON."""

    def __init__(self, api: client.ApiClient, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.api = api
        self.timeout = timeout
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._policy = client.PolicyV1Api(api)
        self._discovery = client.DiscoveryV1Api(api)
        self._admission = client.AdmissionregistrationV1Api(api)

    def webhook_configuration(self, name: str) -> Json:
        return self._json(self._admission.read_mutating_webhook_configuration, name)

    def webhook_configurations(self, label_selector: str = PART_OF_LABEL) -> list[Json]:
        call = self._admission.list_mutating_webhook_configuration
        return _items(self._json(call, label_selector=label_selector))

    def namespaces(self) -> list[Json]:
        return _items(self._json(self._core.list_namespace))

    def service(self, namespace: str, name: str) -> Json:
        return self._json(self._core.read_namespaced_service, name, namespace)

    def endpoint_slices(self, namespace: str, service: str) -> list[Json]:
        call = self._discovery.list_namespaced_endpoint_slice
        selector = f"kubernetes.io/service-name={service}"
        return _items(self._json(call, namespace, label_selector=selector))

    def deployments(self, namespace: str) -> list[Json]:
        return _items(self._json(self._apps.list_namespaced_deployment, namespace))

    def disruption_budgets(self, namespace: str) -> list[Json]:
        return _items(self._json(self._policy.list_namespaced_pod_disruption_budget, namespace))

    def secret(self, namespace: str, name: str) -> Json:
        return self._json(self._core.read_namespaced_secret, name, namespace)

    def dry_run_pod(self, namespace: str, pod: Json) -> tuple[Json, list[str]]:
        """The pod as a dry-run create (`dryRun=All`) stores it, and the answer's warnings."""
        response = self._call(
            self._core.create_namespaced_pod,
            namespace,
            pod,
            dry_run="All",
            _request_timeout=DRY_RUN_TIMEOUT_S,
        )
        headers = response.headers.getlist("Warning") if response.headers else []
        return json.loads(response.data), [parse_warning(header) for header in headers]

    def _json(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
        answer: Json = json.loads(self._call(method, *args, **kwargs).data)
        return answer

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return method(*args, _preload_content=False, **kwargs)
        except ApiException as error:
            raise Refused(error.status or 0, _status_message(error), api_problem(error)) from None
        except urllib3.exceptions.HTTPError as error:
            problem = unreachable(error)
            raise Refused(0, problem, problem) from None


def rights_hint(refused: Refused, *, verb: str, resource: str, namespace: str = "") -> str:
    """For a 403: the right `check` lacks and how to ask about it; else ""."""
    if refused.code != 403:
        return ""
    where = f" in namespace {namespace}" if namespace else ""
    ask = f"kubectl auth can-i {verb} {resource}" + (f" -n {namespace}" if namespace else "")
    return f"check needs {verb} on {resource}{where}: {ask}"


def _status_message(error: ApiException) -> str:
    try:
        status = json.loads(error.body or "")
    except ValueError:
        return str(error.reason or "")
    message = status.get("message") if isinstance(status, dict) else None
    return str(message) if message else str(error.reason or "")


def _items(listed: Json) -> list[Json]:
    return list(listed.get("items") or [])
