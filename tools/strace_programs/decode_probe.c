/* One call of each struct strace decodes that sysspan once showed as an address: sysinfo,
 * statfs/fstatfs, sched_getaffinity, getdents64, FICLONE, an itimer, a sleep cut short by
 * SIGALRM (its remaining time, rt_sigreturn's mask), and SIGCHLD from an exit and a kill. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <unistd.h>
static void on_alarm(int s) { (void)s; }
int main(void) {
    struct sysinfo si; sysinfo(&si);
    struct statfs sf; statfs("/", &sf); int fd = open(".", O_RDONLY|O_DIRECTORY); fstatfs(fd, &sf);
    statfs("/proc", &sf);
    cpu_set_t set; sched_getaffinity(0, sizeof set, &set);
    char buf[4096]; syscall(217, fd, buf, sizeof buf);
    int a = open("/proc/self/exe", O_RDONLY), b = open("clone.out", O_WRONLY|O_CREAT|O_TRUNC, 0644);
    ioctl(b, FICLONE, a);
    struct sigaction sa = {.sa_handler = on_alarm}; sigaction(SIGALRM, &sa, NULL);
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1); sigprocmask(SIG_BLOCK, &m, NULL);
    struct itimerval it = {.it_value = {.tv_usec = 20000}}; setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = {1, 0}, rem; clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    struct timespec r2 = {0, 5000}; nanosleep(&r2, &rem);
    pid_t c = fork(); if (c == 0) _exit(3);
    int st; waitpid(c, &st, 0);
    c = fork(); if (c == 0) { pause(); _exit(0); }
    kill(c, SIGTERM); waitpid(c, &st, 0);
    return 0;
}
