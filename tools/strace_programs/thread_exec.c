/* A second thread calls execve while the leader waits in pause(): strace reports the exec
 * under the leader pid with "+++ superseded by execve in pid N +++". The thread sleeps
 * first so that the leader is in pause() by then. */
#include <pthread.h>
#include <unistd.h>
static void *run(void *arg) {
    (void)arg;
    usleep(100000);
    char *argv[] = {"/bin/true", NULL};
    execv("/bin/true", argv);
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, run, NULL);
    pause();
    return 0;
}
