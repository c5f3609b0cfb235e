"""N decisions in a loop, as the issue measured them; prints the loop's ns per call."""

import sys
import time

import sysspan.decisions as d

n = int(sys.argv[1])
rec = d.record
rec("bench", "warm-up")  # under sysspan the first decision maps the ring: not timed
t0 = time.perf_counter_ns()
for i in range(n):
    rec("bench", "hot", input=i, result=i & 1)
print(f"{(time.perf_counter_ns() - t0) / n:.1f} {d.mode()}")
