"""The Kubernetes API client of the certs commands, and what its errors mean to a person.

Owns: `api_client` (the pod's service account, or a kubeconfig file; an unusable one is
`BadInput`), `api_problem` (an `ApiException` as one line) and `refusals_as_failures` (the
client's and `certs.publish`'s errors as the commands' one-line `Failed`). Which calls are made
and in what order is the commands' business (`certs.bootstrap`, `certs.check`).

Must not import anything in `webhook` but `webhook.checks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from certs.errors import BadInput, Failed, PublishError
from webhook.checks import one_line


@contextmanager
def api_client(kubeconfig: Path | None) -> Iterator[client.ApiClient]:
    """A client from `kubeconfig`, or from the pod's service account when None."""
    try:
        if kubeconfig is None:
            configuration = client.Configuration()
            load = config.load_incluster_config  # untyped in the kubernetes package
            load(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = client.ApiClient(configuration)
        else:
            # persist_config=False: a token refresh must not rewrite the user's file.
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), persist_config=False
            )
    # The kubeconfig loader lets parse and lookup errors of a malformed file through as is.
    except (config.ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError) as e:
        where = (
            f"--kubeconfig {kubeconfig}"
            if kubeconfig is not None
            else "the in-cluster service account (outside a cluster, give --kubeconfig)"
        )
        problem = f"cannot configure the Kubernetes client from {where}: {e}"
        raise BadInput(one_line(problem)) from None
    with api:
        yield api


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
