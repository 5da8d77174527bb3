import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "igniting"

# Tests use their own ephemeral Dagster instances; never the developer's run history.
os.environ.pop("DAGSTER_HOME", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def zhufu_home(tmp_path, monkeypatch) -> Path:
    """An isolated ZHUFU_HOME (warehouse, inbox, model store) for one test."""
    home = tmp_path / "zhufu"
    monkeypatch.setenv("ZHUFU_HOME", str(home))
    for var in ("ZHUFU_CATALOG", "ZHUFU_DATA_PATH", "ZHUFU_SEED_DATA", "ZHUFU_INBOX"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def wh(zhufu_home):
    from warehouse import Warehouse, WarehouseConfig

    return Warehouse(WarehouseConfig.embedded(zhufu_home))


@pytest.fixture
def paper_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("the paper's data is not beside this checkout (../shared/data/igniting)")
    return SHARED_DATA
