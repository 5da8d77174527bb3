"""Concurrency pools and retry policies shared by the assets.

Steps that load a model (agents on the local backend, training, scoring) share the pool
``zhufu/model``; `make ui` limits every pool to one step at a time (``concurrency.pools.default_limit``
in ``$DAGSTER_HOME/dagster.yaml``), so `dagster dev` never loads several models at once and runs out
of memory. Steps that call an LLM endpoint retry on failure: a run that died on a transport error
resumes from the call log, so a retry costs only the calls that were not answered.
"""

import dagster as dg

MODEL_POOL = "zhufu/model"
LLM_RETRY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL)
