/* Loopback TCP: the parent listens on an ephemeral port, a forked child connects, sends a
 * request and reads the reply; the parent accepts, reads, answers and reaps the child. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv, (struct sockaddr *)&addr, sizeof addr) || listen(srv, 4)) return 1;
    getsockname(srv, (struct sockaddr *)&addr, &len);
    pid_t child = fork();
    if (child == 0) {
        close(srv);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&addr, sizeof addr)) return 2;
        char buf[64];
        send(c, "GET /hello", 10, 0);
        ssize_t n = recv(c, buf, sizeof buf, 0);
        close(c);
        return n == 5 ? 0 : 3;
    }
    int conn = accept(srv, NULL, NULL);
    char buf[64];
    ssize_t n = recv(conn, buf, 10, MSG_WAITALL);
    send(conn, "hello", 5, 0);
    shutdown(conn, SHUT_WR);
    close(conn);
    close(srv);
    int status;
    waitpid(child, &status, 0);
    return n == 10 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}
