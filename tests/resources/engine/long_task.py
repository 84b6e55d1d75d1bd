"""Appends its pid to a marker file, then works for a few seconds."""

import os
import sys
import time
from pathlib import Path

marker = Path(sys.argv[1])
with marker.open("a") as f:
    f.write(f"{os.getpid()}\n")
time.sleep(float(os.environ.get("LONG_TASK_SECONDS", "3")))
print("cnvrg_tag_done: 1")
