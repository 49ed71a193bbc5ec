import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def golden():
    return json.loads((DATA / "fpga_legacy_cases.json").read_text())


@pytest.fixture(scope="session")
def golden_path():
    return DATA / "fpga_legacy_cases.json"
