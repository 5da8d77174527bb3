"""Concurrency pools and retry policies shared by the assets.

Steps that load a model (agents on the local backend, training, scoring) share the pool
``zhufu/model``; `make ui` limits every pool to one step at a time (``concurrency.pools.default_limit``
in ``$DAGSTER_HOME/dagster.yaml``), so `dagster dev` never loads several models at once and runs out
of memory. Steps that call an LLM endpoint retry on failure: a run that died on a transport error
resumes from the call log, so a retry costs only the calls that were not answered. The first retry
waits ``ZHUFU_LLM_RETRY_DELAY_S`` seconds (15: time for a busy endpoint to recover), the second twice
that; read when the assets are imported.
"""

import os

import dagster as dg

MODEL_POOL = "zhufu/model"


def retry_delay_s() -> float:
    raw = os.environ.get("ZHUFU_LLM_RETRY_DELAY_S", "15")
    try:
        delay = float(raw)
    except ValueError:
        delay = -1.0
    if not delay >= 0:  # also refuses nan
        raise ValueError(f"ZHUFU_LLM_RETRY_DELAY_S={raw!r}: expected seconds, a number >= 0")
    return delay


LLM_RETRY = dg.RetryPolicy(max_retries=2, delay=retry_delay_s(), backoff=dg.Backoff.EXPONENTIAL)
