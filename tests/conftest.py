import numpy as np
import pytest

import impl


@pytest.fixture(autouse=True)
def _runtime_checks_on():
    """impl/ is checked by jaxtyping + beartype in every test."""
    with impl.runtime_checks(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20240107)
