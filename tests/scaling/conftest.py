import json
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); reference data unavailable")
    return SHARED


@pytest.fixture(scope="session")
def pwcmp_cases(shared_dir):
    path = shared_dir / "reference" / "pwcmp" / "reference_cases.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())["cases"]


@pytest.fixture(scope="session")
def ex3_csv(shared_dir):
    path = shared_dir / "datasets" / "pwcmp-ex3" / "ex3_tmo_cmp_data.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")
