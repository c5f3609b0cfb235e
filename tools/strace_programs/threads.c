/* Four threads, each mapping a private page, writing a file of its own and joining back. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *work(void *arg) {
    long id = (long)arg;
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char name[32];
    snprintf(name, sizeof name, "thread-%ld.out", id);
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int n = snprintf(page, 4096, "thread %ld\n", id);
    write(fd, page, (size_t)n);
    close(fd);
    munmap(page, 4096);
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}
