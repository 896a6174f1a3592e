"""The handler fuzz tests in their long mode: many examples per handler, random seeds; prints figures.

    .venv/bin/python benchmarks/fuzz_handlers.py [EXAMPLES]   (default 1000 per handler and fixture)

`make test` runs the same tests with 25 derandomized examples each (REENGAGE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "1000"
    env = {**os.environ, "REENGAGE_FUZZ_EXAMPLES": examples, "REENGAGE_FUZZ_RANDOM": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_handler_fuzz.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:])
    print(f"{examples} examples per handler and fixture: {elapsed:.1f} s")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
