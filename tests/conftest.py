import json
from pathlib import Path

import numpy as np
import pytest

SPEC = Path(__file__).resolve().parents[1] / "tests" / "data" / "link_vectors.json"


def _load_vectors():
    return json.loads(SPEC.read_text())["cases"]


@pytest.fixture(scope="session")
def link_vectors():
    return _load_vectors()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
