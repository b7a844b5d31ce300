"""The README's "Install in a cluster" commands fit the chart: each `helm install` renders with
its values and deploys the image the README built or pushed, and the namespace label it tells
users to set is the one the webhook configuration selects."""

from __future__ import annotations

import re
import shlex

from tests.chart.render import Chart, of_kind, webhook, webhooks
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Install in a cluster", 1)[1].split("\n## ", 1)[0]


def commands(program: str) -> list[list[str]]:
    """The commands of the section's sh blocks starting with `program`, continuations joined."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", SECTION, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[: len(program.split())] == program.split():
                found.append(words)
    return found


def set_values(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


def deployed_image(helm: str, words: list[str]) -> str:
    [deployment] = of_kind(Chart(helm).render(*set_values(words)), "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return str(container["image"])


def test_the_section_has_the_commands_these_tests_read() -> None:
    assert len(commands("helm install")) == 2
    assert len(commands("docker build")) == 1
    assert len(commands("docker push")) == 1


def test_each_helm_install_deploys_the_image_the_readme_made(helm: str) -> None:
    [built] = [words[words.index("-t") + 1] for words in commands("docker build")]
    [pushed] = [words[2] for words in commands("docker push")]
    kind_install, registry_install = commands("helm install")
    assert deployed_image(helm, kind_install) == built
    assert deployed_image(helm, registry_install) == pushed


def test_the_cluster_scope_upgrade_renders(helm: str) -> None:
    [upgrade] = [words for words in commands("helm upgrade") if "scope=cluster" in words]
    hook = webhook(Chart(helm).render(*set_values(upgrade)))
    [scope] = [
        e for e in hook["namespaceSelector"]["matchExpressions"] if e["key"] == "shm-injection"
    ]
    assert scope == {"key": "shm-injection", "operator": "NotIn", "values": ["disabled"]}


def test_the_namespace_label_the_readme_sets_is_the_one_the_webhook_selects(helm: str) -> None:
    labels = [words[-1] for words in commands("kubectl label namespace")]
    assert "shm-injection=enabled" in labels
    hook = webhook(Chart(helm).render())
    [scope] = [
        e for e in hook["namespaceSelector"]["matchExpressions"] if e["key"] == "shm-injection"
    ]
    assert scope == {"key": "shm-injection", "operator": "In", "values": ["enabled"]}


def test_the_namespace_policy_upgrade_and_labels_fit_the_chart(helm: str) -> None:
    [upgrade] = [w for w in commands("helm upgrade") if "namespacePolicy.enabled=true" in w]
    objects = Chart(helm).render(*set_values(upgrade))
    entries = [w["name"] for w in webhooks(objects)]
    assert any(name.startswith("namespace-defaults.") for name in entries)
    labels = [words[-1] for words in commands("kubectl label namespace")]
    assert "shm-injection/defaults=true" in labels
