import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data_root():
    """The first AISVIZ_DATA entry that holds the Peterson sets; skips the test when there is none."""
    for entry in os.environ.get("AISVIZ_DATA", "").split(os.pathsep):
        if entry and (Path(entry) / "peterson2018" / "animals" / "images").is_dir():
            return Path(entry)
    pytest.skip("real data not on AISVIZ_DATA (set AISVIZ_DATA=../shared/data)")
