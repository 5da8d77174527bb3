"""The whole demo on the scale-out engines (issue 14 item 1): a PostgreSQL catalog and Parquet data on an
S3 server, both started here from pip packages on loopback (``tests/remote_servers.py``), then
``python -m assets.demo`` with ``ZHUFU_CATALOG`` / ``ZHUFU_DATA_PATH`` / ``ZHUFU_S3_*`` pointing at them.

    python -m bench.demo_remote [--home /tmp/zhufu-remote]

Prints the demo's own output, then the row count of every table as read back through the remote
catalog, and the objects written to the bucket. Takes as long as ``make demo`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from tests.remote_servers import postgres, s3_server


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.demo_remote", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", help="ZHUFU_HOME for the run (models, Dagster; default: a temporary directory)")
    a = p.parse_args()
    home = Path(a.home or tempfile.mkdtemp(prefix="zhufu-remote-"))
    with postgres() as database, s3_server() as s3:
        env = {**os.environ, **s3, "ZHUFU_HOME": str(home), "ZHUFU_CATALOG": f"postgres:{database('zhufu')}",
               "ZHUFU_DATA_PATH": "s3://lake/zhufu/", "DAGSTER_HOME": str(home / "dagster")}
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        (home / "dagster" / "dagster.yaml").write_text(  # as the Makefile writes it
            "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n")
        start = time.time()
        code = subprocess.run([sys.executable, "-m", "assets.demo"], env=env).returncode
        took = time.time() - start
        os.environ.update({k: v for k, v in env.items() if k.startswith("ZHUFU_")})
        from warehouse import Warehouse, WarehouseConfig

        wh = Warehouse(WarehouseConfig.from_env())
        counts = [[t, wh.count(t)] for t in wh.tables()]
        print(tabulate(counts, headers=["table (PostgreSQL catalog, S3 data)", "rows"], tablefmt="github"))
        import boto3

        s3c = boto3.client("s3", endpoint_url=f"http://{s3['ZHUFU_S3_ENDPOINT']}", aws_access_key_id=s3["ZHUFU_S3_KEY_ID"],
                           aws_secret_access_key=s3["ZHUFU_S3_SECRET"], region_name="us-east-1")
        objects = s3c.get_paginator("list_objects_v2").paginate(Bucket="lake", Prefix="zhufu/")
        n = sum(len(page.get("Contents", [])) for page in objects)
        print(f"demo exit {code} in {took:.0f} s; {n} objects under s3://lake/zhufu/; "
              f"{sum(c for _, c in counts):,} rows in {sum(1 for _, c in counts if c)} non-empty tables")
        wh.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
