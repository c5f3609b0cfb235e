"""is_prime by trial division over the first N integers, one decision per call; prints
the hot part's seconds."""

import sys
import time

import sysspan.decisions as d


def is_prime(n: int) -> bool:
    prime = n >= 2
    i = 2
    while i * i <= n:
        if n % i == 0:
            prime = False
            break
        i += 1
    d.record("bench", "is_prime", input=n, result=prime)
    return prime


if __name__ == "__main__":
    t0, c0 = time.perf_counter(), time.thread_time()
    count = sum(1 for n in range(int(sys.argv[1])) if is_prime(n))
    print(f"{time.perf_counter() - t0:.6f} {time.thread_time() - c0:.6f} {count} {d.mode()}")
