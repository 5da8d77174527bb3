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
# A step that fails on purpose retries at once instead of after 15 + 30 s (assets.pools.LLM_RETRY).
os.environ["ZHUFU_LLM_RETRY_DELAY_S"] = "0"
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


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """A model store shared by the session: the embedded SmolLM2 is converted once."""
    from resources.model_store import ModelStore

    return ModelStore(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def embedded_model_dir(model_store) -> Path:
    return model_store.ensure_embedded()


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_model_dir, tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer: fast, for control-flow tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
