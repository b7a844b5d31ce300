"""The chart renderer shared by the chart tests: one `helm template` per distinct set of
values, Kubernetes version and namespace for the whole session."""

from __future__ import annotations

import pytest

from tests.chart.render import Chart


@pytest.fixture(scope="session")
def chart(helm: str) -> Chart:
    return Chart(helm)
