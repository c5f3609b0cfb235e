"""fib(N) recursively, one decision per call; prints the hot part's seconds."""

import sys
import time

import sysspan.decisions as d


def fib(n: int) -> int:
    d.record("bench", "fib", input=n, result=n < 2)
    return n if n < 2 else fib(n - 1) + fib(n - 2)


if __name__ == "__main__":
    t0, c0 = time.perf_counter(), time.thread_time()
    value = fib(int(sys.argv[1]))
    print(f"{time.perf_counter() - t0:.6f} {time.thread_time() - c0:.6f} {value} {d.mode()}")
