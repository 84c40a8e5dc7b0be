import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

SPEC = Path(__file__).resolve().parents[1] / "tests" / "data" / "link_vectors.json"


def _load_vectors():
    return json.loads(SPEC.read_text())["cases"]


@pytest.fixture(scope="session")
def link_vectors():
    return _load_vectors()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# CI explores a fixed set of examples, so that a run fails only when the code
# changed; local runs draw new examples each time and keep failures in the
# .hypothesis database.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="run the tests marked slow (the full differential profiles)",
    )


def pytest_collection_modifyitems(config, items):
    # the full profiles of tests/test_reference.py, when asked for (.ci/run
    # asks at the ceiling of the dependency range)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
