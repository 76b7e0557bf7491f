"""Small helpers shared by the TSBS benchmark modules (benchmarks/bench_tsbs.py).

``rb`` stands for the shared peer benchmark's ``run_bench`` module; it forwards to the
module once ``import_run_bench`` has loaded it (in bench_tsbs.main()), so the other
modules can ``from tsbs_common import rb`` at import time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _RunBench:
    """Attribute access goes to the run_bench module loaded by import_run_bench()."""

    module: Any = None

    def __getattr__(self, name: str) -> Any:
        if _RunBench.module is None:
            raise RuntimeError("run_bench not imported yet (call import_run_bench first)")
        return getattr(_RunBench.module, name)


rb: Any = _RunBench()  # the shared run_bench module, imported in bench_tsbs.main()


def load_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def import_run_bench(shared: str) -> Any:
    if not os.path.isfile(os.path.join(shared, "run_bench.py")):
        sys.exit(f"run_bench.py not found in {shared} (pass --shared)")
    sys.path.insert(0, shared)
    import run_bench  # type: ignore[import-not-found]

    _RunBench.module = run_bench
    return run_bench
