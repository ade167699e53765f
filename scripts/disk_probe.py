"""Print what a synced write costs on this machine's temporary disk (`.ci/run` calls this first).

JetStream syncs every write before it answers (`sync_interval: always`), one sync after another
on each stream, so the end-to-end tests run about as fast as this disk syncs: a run that is slow
or times out can be read against this figure. It prints and never fails the run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

WRITES = 200
RECORD = b"x" * 512  # about one small JetStream message with its headers


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="disk-probe-") as folder:
        path = os.path.join(folder, "probe.blk")
        took: list[float] = []
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for _ in range(WRITES):
                started = time.perf_counter()
                os.write(fd, RECORD)
                os.fsync(fd)
                took.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)
    took.sort()
    p95 = took[int(0.95 * len(took)) - 1]
    print(
        f"disk probe ({tempfile.gettempdir()}): an appended 512-byte write and its fsync take "
        f"p50 {statistics.median(took):.2f} ms, p95 {p95:.2f} ms, max {took[-1]:.2f} ms ({WRITES} writes)"
    )


if __name__ == "__main__":
    main()
