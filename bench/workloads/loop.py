"""N decisions in a loop; prints the loop's wall and thread-CPU ns per call and the mode."""

import sys
import time

import sysspan.decisions as d

n = int(sys.argv[1])
rec = d.record
rec("bench", "warm-up")  # under sysspan the first decision maps the ring: not timed
t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
for i in range(n):
    rec("bench", "hot", input=i, result=i & 1)
c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
print(f"{(t1 - t0) / n:.1f} {(c1 - c0) / n:.1f} {d.mode()}")
