"""Where a training process runs: a local subprocess (default) or a job on a Ray cluster.

The training assets hand :func:`launch` a command (``python -m training.<kind> --config …``); the
``pipes_client`` resource decides where it runs, and logs and metrics come back over Dagster Pipes
either way:

* ``dg.PipesSubprocessClient()`` — a child process of the Dagster step (the default);
* ``PipesRayJobClient`` (``dagster-ray``, extra ``ray``) — a Ray job submitted to the cluster's job
  API, selected by ``ZHUFU_RAY_ADDRESS=http://head:8265``. With token authentication on the cluster
  (``RAY_AUTH_MODE=token``), the token is read from ``ZHUFU_RAY_TOKEN`` (else ``RAY_AUTH_TOKEN``)
  and sent as a bearer header; it never enters Dagster config, metadata or the job's environment.

A Ray job runs on a node of the cluster: the interpreter (``TrainingResource.python``), the project
and ``ZHUFU_HOME`` (run configs, exported data, the model store) must be reachable there under the
same paths — the same machine, or a shared filesystem. Secrets the training process needs (a
catalog password) are not sent with the job, whose environment the Ray dashboard shows: set them on
the Ray nodes. Kubernetes (``dagster-k8s``' ``PipesK8sClient``) takes the same command; no cluster
runs here, so it stays a documented configuration (docs/SCALE.md).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from warehouse.config import zhufu_home

RAY_ADDRESS_ENV = "ZHUFU_RAY_ADDRESS"
RAY_TOKEN_ENVS = ("ZHUFU_RAY_TOKEN", "RAY_AUTH_TOKEN")
RAY_GPUS_ENV = "ZHUFU_RAY_GPUS"  # GPUs a training job reserves on the cluster (default 0)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pipes_client_from_env() -> dg.PipesClient:
    """The Ray job client when ``ZHUFU_RAY_ADDRESS`` is set, else a local subprocess client."""
    address = os.environ.get(RAY_ADDRESS_ENV)
    return ray_client(address) if address else dg.PipesSubprocessClient()


def ray_token() -> str | None:
    return next((os.environ[v] for v in RAY_TOKEN_ENVS if os.environ.get(v)), None)


def ray_client(address: str) -> dg.PipesClient:
    """A Pipes client that submits each training run as a Ray job to the job API at ``address``."""
    try:
        from dagster_ray import PipesRayJobClient
    except ImportError as e:  # pragma: no cover - the extra is part of dev
        raise RuntimeError(f"{RAY_ADDRESS_ENV} is set but dagster-ray is not installed: pip install 'zhufu[ray]'") from e
    token = ray_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return PipesRayJobClient(address=address, headers=headers)


def is_ray(client: object) -> bool:
    return type(client).__name__ == "PipesRayJobClient"


def ray_job_env() -> dict[str, str]:
    """What a Ray job needs beyond the node's own environment: the project on the path and the same
    ``ZHUFU_HOME``. Nothing secret: the dashboard shows a job's environment."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    # No progress bars: a job's stdout and stderr are one log, from which dagster-ray reads the Pipes
    # messages line by line, and a bar's unterminated "\r…" line swallowed the next message (measured).
    env = {"PYTHONPATH": path, "ZHUFU_HOME": str(zhufu_home()), "TQDM_DISABLE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ZHUFU_SMOLLM2_GGUF", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


def launch(client: Any, context: dg.AssetExecutionContext, command: Sequence[str], *, extras: Mapping[str, Any],
           env: Mapping[str, str] | None = None) -> Any:
    """Run ``command`` through ``client`` over Pipes; returns the completed invocation. ``env``: extra
    (secret) variables for the process — given to a local subprocess, never sent with a Ray job."""
    if is_ray(client):
        if env:
            context.log.warning(f"not sent with the Ray job (its environment is visible in the dashboard): "
                                f"{', '.join(sorted(env))} — set them on the Ray nodes")
        params = {"entrypoint": shlex.join(command), "runtime_env": {"env_vars": ray_job_env()},
                  "entrypoint_num_gpus": float(os.environ.get(RAY_GPUS_ENV) or 0)}
        return client.run(context=context, submit_job_params=params, extras=dict(extras))
    return client.run(context=context, command=list(command), extras=dict(extras), **({"env": dict(env)} if env else {}))
