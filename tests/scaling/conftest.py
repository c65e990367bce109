"""Fixtures of the scaling tests: pwcmp's recorded reference outputs and example data set 3.

Both live in the repository (``tests/scaling/data``, see its README), so the pwcmp-equality tests
run on a fresh clone without ``../shared``.
"""

import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
#: pwcmp's outputs on the reference cases (recorded under GNU Octave)
PWCMP_CASES = DATA / "pwcmp" / "reference_cases.json"
#: pwcmp's example data set 3 (tone-mapping comparisons, long table)
EX3_CSV = DATA / "pwcmp-ex3" / "ex3_tmo_cmp_data.csv"


@pytest.fixture(scope="session")
def pwcmp_cases() -> dict:
    """The reference cases: name -> {"D": counts, "<prior>_<regularization>": scores, ...}."""
    return json.loads(PWCMP_CASES.read_text(encoding="utf-8"))["cases"]


@pytest.fixture(scope="session")
def ex3_csv() -> Path:
    return EX3_CSV


os.environ.setdefault("MPLBACKEND", "Agg")
