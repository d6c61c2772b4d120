"""`make bench`: every benchmark in turn, each printing its own figures.

Speed is measured, never asserted. Timings vary with the machine's load: compare figures
from one run, as ratios.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    ["bench_model.py"],
    ["bench_train.py"],
    ["bench_generate.py", "--num", "1000"],
    ["bench_tokenizer.py"],
    ["bench_infer.py"],
    ["bench_serve.py"],
]

if __name__ == "__main__":
    failed = []
    for argv in BENCHMARKS:
        print(f"\n##### {' '.join(argv)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]]) != 0:
            failed.append(argv[0])
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
