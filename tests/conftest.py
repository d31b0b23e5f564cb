import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

from support.harness import Codesift  # noqa: E402


@pytest.fixture
def cs(tmp_path):
    return Codesift(tmp_path)
