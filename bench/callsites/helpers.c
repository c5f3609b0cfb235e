/* The second translation unit of the call-site benchmark. */
#include <fcntl.h>
#include <unistd.h>

#include "helpers.h"

int other_file_open(const char *p) {
    int fd = open(p, O_RDONLY); /* site:other */
    if (fd >= 0) close(fd);
    return fd >= 0;
}

int other_file_tail(const char *p) {
    return open(p, O_RDONLY); /* site:other-tail tail */
}
