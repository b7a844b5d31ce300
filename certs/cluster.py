"""The Kubernetes API client of the commands that talk to a cluster, and what its errors mean
to a person.

Owns: `api_client` (the one resolution of where the cluster is, for `certs bootstrap`,
`certs check --secret` and `check`: `--kubeconfig`, else `KUBECONFIG`, else
`~/.kube/config`, with `--context`; else the pod's service account; an unusable source is
`BadInput`), `api_problem` (an `ApiException` as one line) and `refusals_as_failures` (the
client's and `certs.publish`'s errors as the commands' one-line `Failed`). Which calls are made
and in what order is the commands' business (`certs.bootstrap`, `certs.check`).

Must not import anything in `webhook` but `webhook.checks`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from certs.errors import BadInput, Failed, PublishError
from webhook.checks import one_line

KUBECONFIG_VARIABLE = "KUBECONFIG"
DEFAULT_KUBECONFIG = Path("~/.kube/config")
# Every way to point the commands at a cluster, for the message when none works.
SOURCES = (
    "give --kubeconfig PATH (and --context NAME), set KUBECONFIG, write ~/.kube/config,"
    " or run in a pod with a service account"
)
# The kubeconfig loader lets parse and lookup errors of a malformed file through as is.
_LOAD_ERRORS = (config.ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError)


@contextmanager
def api_client(
    kubeconfig: Path | None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[client.ApiClient]:
    """A client for the cluster the way kubectl finds it: the `kubeconfig` file, else the
    files of `KUBECONFIG` (a colon-separated list, merged by the client's loader), else
    `~/.kube/config` when it exists, each at `context` or its current context; else the pod's
    service account (no `context` then). `environ` defaults to the process environment."""
    environ = os.environ if environ is None else environ
    source, files = _kubeconfig_source(kubeconfig, environ)
    try:
        if files is None:
            if context is not None:
                raise BadInput(
                    f"--context {context} needs a kubeconfig, and none was found: {SOURCES}"
                )
            api = _in_cluster(environ)
        else:
            # persist_config=False: a token refresh must not rewrite the user's file.
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=files, context=context, persist_config=False
            )
    except _LOAD_ERRORS as error:
        where = source + (f" (context {context})" if context is not None else "")
        problem = f"cannot configure the Kubernetes client from {where}: {error}"
        raise BadInput(one_line(problem)) from None
    with api:
        yield api


def _kubeconfig_source(
    kubeconfig: Path | None, environ: Mapping[str, str]
) -> tuple[str, str | None]:
    """(how to name the source in an error, the kubeconfig files or None for in-cluster)."""
    if kubeconfig is not None:
        if not kubeconfig.expanduser().is_file():
            raise BadInput(f"--kubeconfig {kubeconfig}: no such file")
        return f"--kubeconfig {kubeconfig}", str(kubeconfig.expanduser())
    listed = environ.get(KUBECONFIG_VARIABLE, "")
    if listed:
        named = f"{KUBECONFIG_VARIABLE}={listed}"
        paths = [Path(path).expanduser() for path in listed.split(os.pathsep) if path]
        if not any(path.is_file() for path in paths):
            raise BadInput(f"{named} names no file that exists; {SOURCES}")
        return named, listed
    home = environ.get("HOME")
    default = Path(home) / ".kube" / "config" if home else DEFAULT_KUBECONFIG.expanduser()
    if default.is_file():
        return str(default), str(default)
    return f"the in-cluster service account (outside a cluster: {SOURCES})", None


def _in_cluster(environ: Mapping[str, str]) -> client.ApiClient:
    configuration = client.Configuration()
    loader = config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=config.incluster_config.SERVICE_TOKEN_FILENAME,
        cert_filename=config.incluster_config.SERVICE_CERT_FILENAME,
        environ=environ,
    )
    loader.load_and_set(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def api_problem(error: ApiException) -> str:
    """One line: the HTTP status, its reason and the apiserver's message."""
    try:
        status = json.loads(error.body or "")
    except ValueError:  # not a Status: a proxy's or load balancer's page
        status = None
    message = status.get("message") if isinstance(status, dict) else None
    text = f"the Kubernetes API answered {error.status} {error.reason}"
    return one_line(f"{text}: {message}" if message else text)


def unreachable(error: urllib3.exceptions.HTTPError) -> str:
    """One line: why the Kubernetes API could not be reached."""
    reason = getattr(error, "reason", None) or error
    return one_line(f"cannot reach the Kubernetes API: {reason}")


@contextmanager
def refusals_as_failures() -> Iterator[None]:
    """Turn the API's refusals, an unreachable API and `PublishError` into `Failed`."""
    try:
        yield
    except ApiException as error:
        raise Failed(api_problem(error)) from None
    except PublishError as error:
        raise Failed(one_line(str(error))) from None
    except urllib3.exceptions.HTTPError as error:
        raise Failed(unreachable(error)) from None
