"""Fails until it has been called N times (counted in a file outside the run)."""

import sys
from pathlib import Path

counter = Path(sys.argv[1])
fail_times = int(sys.argv[2])
seen = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(seen + 1))
if seen < fail_times:
    print(f"failing on purpose (call {seen + 1})")
    sys.exit(1)
print("cnvrg_tag_calls:", seen + 1)
