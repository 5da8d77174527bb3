"""The retry delay of model-calling steps is configured by environment, and a bad value is named."""

import pytest

from assets import pools


def test_the_retry_delay_comes_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv("ZHUFU_LLM_RETRY_DELAY_S", raising=False)
    assert pools.retry_delay_s() == 15
    monkeypatch.setenv("ZHUFU_LLM_RETRY_DELAY_S", "2.5")
    assert pools.retry_delay_s() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("ZHUFU_LLM_RETRY_DELAY_S", bad)
        with pytest.raises(ValueError, match=f"ZHUFU_LLM_RETRY_DELAY_S='{bad}'"):
            pools.retry_delay_s()
