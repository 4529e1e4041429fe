import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `import reference`

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
