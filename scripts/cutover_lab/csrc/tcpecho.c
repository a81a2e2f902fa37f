/* tcpecho: the lab guest's TCP echo server, one process per connection (static). */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  signal(SIGCHLD, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7)};
  if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) < 0 || listen(fd, 64) < 0) return 1;
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    if (fork() == 0) {
      char buf[4096];
      ssize_t n;
      while ((n = read(c, buf, sizeof buf)) > 0) {
        if (write(c, buf, n) != n) break;
      }
      _exit(0);
    }
    close(c);
  }
}
