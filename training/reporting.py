"""Progress and metrics out of a training process: to Dagster through Pipes when launched by it,
else to stdout. Only ``dagster_pipes`` (the dependency-free protocol package) is imported."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from transformers import TrainerCallback

from training import distributed


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


class Reporter:
    """``with Reporter() as r: r.info(...); r.metrics(step, {...})``."""

    def __init__(self) -> None:
        self._pipes = None
        self._cm = None
        self.history: list[dict[str, Any]] = []

    def __enter__(self) -> Reporter:
        try:
            from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
        except ImportError:  # a standalone run on a machine without Dagster: stderr only
            return self
        if PipesEnvVarParamsLoader().is_dagster_pipes_process() and distributed.is_main():  # one voice per run
            self._cm = open_dagster_pipes()
            self._pipes = self._cm.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)

    def info(self, message: str) -> None:
        if not distributed.is_main():
            return
        if self._pipes is not None:
            self._pipes.log.info(message)
        print(message, file=sys.stderr, flush=True)

    def metrics(self, step: int, values: dict[str, Any]) -> None:
        row = {"step": step, **_clean(values)}
        self.history.append(row)
        if not distributed.is_main():
            return
        if self._pipes is not None:
            self._pipes.report_custom_message(row)
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)


class ReporterCallback(TrainerCallback):
    """Forwards the Trainer's logs (loss, reward, KL, completion length, clipping …)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.reporter.metrics(state.global_step, logs)


def run_cli(module: str, doc: str | None, config_cls, train, argv: list[str] | None = None) -> int:
    """``python -m training.<kind> --config run.json``: load the config, train under a Reporter."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help=f"a {config_cls.__name__} as JSON")
    args = parser.parse_args(argv)
    cfg = config_cls.load(args.config)
    distributed.init()  # under torchrun: this rank's GPU and the process group
    try:
        with Reporter() as reporter:
            metrics = train(cfg, reporter)
            reporter.info(f"{module} done: {metrics}")
    finally:
        distributed.shutdown()
    return 0
