import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

from support.harness import Codesift  # noqa: E402

# CLI searches run in-process (and in their children) unless a test asks for the resident
# search process (tests/test_resident.py): none is left behind by the suite.
os.environ["CODESIFT_RESIDENT"] = "off"


@pytest.fixture
def cs(tmp_path):
    return Codesift(tmp_path)
