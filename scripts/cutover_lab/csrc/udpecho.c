/* udpecho: the lab guest's UDP echo server (static, runs as a busybox-initramfs service). */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char** argv) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7)};
  if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) < 0) return 1;
  char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr*)&from, &len);
    if (n > 0) sendto(fd, buf, n, 0, (struct sockaddr*)&from, len);
  }
}
