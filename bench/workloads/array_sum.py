"""sum_array over ARRAYS arrays of 1,000 integers, one decision per call; prints the hot
part's seconds."""

import sys
import time

import sysspan.decisions as d


def sum_array(values: list[int]) -> int:
    total = 0
    for v in values:
        total += v
    d.record("bench", "sum_array", input=len(values), result=total)
    return total


if __name__ == "__main__":
    arrays = [list(range(k, k + 1000)) for k in range(int(sys.argv[1]))]
    t0, c0 = time.perf_counter(), time.thread_time()
    grand = sum(sum_array(a) for a in arrays)
    print(f"{time.perf_counter() - t0:.6f} {time.thread_time() - c0:.6f} {grand} {d.mode()}")
