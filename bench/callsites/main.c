/* Call sites for bench/bench_callsites.py. Each marker file is opened from exactly one line,
 * the line carrying "site:NAME"; "tail" marks a call in tail position (a compiler may turn it
 * into a jump from -O2 on, which removes its frame). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static int quiet_close(int fd) { return fd >= 0 ? close(fd) : -1; }

static int direct_helper(const char *p) {
    int fd = open(p, O_RDONLY); /* site:helper */
    if (fd < 0) return -1;
    return quiet_close(fd);
}

static inline int inline_helper(const char *p) {
    int fd = openat(AT_FDCWD, p, O_RDONLY); /* site:inline */
    return quiet_close(fd);
}

__attribute__((noinline)) static int tail_helper(const char *p) {
    return open(p, O_RDONLY); /* site:tail tail */
}

static int (*via_pointer)(const char *, int, ...) = open;

static int recurse(int depth, const char *p) {
    if (depth == 0) {
        struct stat st;
        return stat(p, &st); /* site:recursion tail */
    }
    int r = recurse(depth - 1, p);
    return r + 1;
}

static void loop_sites(void) {
    for (int i = 0; i < 3; i++) {
        quiet_close(open("loop", O_RDONLY)); /* site:loop */
    }
}

int main(void) {
    quiet_close(open("main", O_RDONLY)); /* site:main */
    direct_helper("helper");
    inline_helper("inline");
    quiet_close(tail_helper("tail"));
    quiet_close(via_pointer("pointer", O_RDONLY)); /* site:pointer */
    recurse(3, "recursion");
    loop_sites();
    other_file_open("other");
    quiet_close(other_file_tail("other-tail"));
    FILE *f = fopen("stdio", "r"); /* site:stdio */
    if (f) fclose(f);
    return 0;
}
