/* udpecho: the lab guest's UDP echo server (static, runs as a busybox-initramfs service).
 * Its socket buffers are large (8 MiB, forced: the guest's rmem_max would cap them) so that a
 * burst queued in the tap during a migration's pause is not dropped here: the lab measures the
 * network, not this program. It counts what it received and echoed per peer (address + port);
 * a datagram "CUTOVER-STAT" is answered with those counts and the guest's own drop counters
 * (/proc/net/snmp Udp, eth0's rx_dropped), so the lab can tell where a lost echo died. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PEERS 32

struct peer {
  struct sockaddr_in addr;
  unsigned long rx, tx, tx_errors, last; /* last: when it was last heard (a datagram count) */
};

static struct peer peers[PEERS];
static unsigned long heard;

/* The peer's slot; a new peer takes a free slot or the one heard from longest ago (a probe that
 * ended: each probe is a new source port). */
static struct peer* find(const struct sockaddr_in* a) {
  struct peer* oldest = &peers[0];
  ++heard;
  for (int i = 0; i < PEERS; ++i) {
    if (peers[i].addr.sin_port == a->sin_port &&
        peers[i].addr.sin_addr.s_addr == a->sin_addr.s_addr) {
      peers[i].last = heard;
      return &peers[i];
    }
    if (peers[i].last < oldest->last) oldest = &peers[i];
  }
  memset(oldest, 0, sizeof *oldest);
  oldest->addr = *a;
  oldest->last = heard;
  return oldest;
}

/* Appends the file's text (newlines as ';') to out. */
static size_t append_file(char* out, size_t at, size_t cap, const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) return at;
  int c;
  while (at + 1 < cap && (c = fgetc(f)) != EOF) out[at++] = c == '\n' ? ';' : (char)c;
  fclose(f);
  out[at] = 0;
  return at;
}

static void stat_reply(int fd, const struct sockaddr_in* to, socklen_t len) {
  char out[4096];
  size_t at = (size_t)snprintf(out, sizeof out, "CUTOVER-STAT peers=");
  for (int i = 0; i < PEERS && at + 80 < sizeof out; ++i) {
    if (peers[i].addr.sin_port == 0) continue;
    at += (size_t)snprintf(out + at, sizeof out - at, "%s:%d/%lu/%lu/%lu,",
                           inet_ntoa(peers[i].addr.sin_addr), ntohs(peers[i].addr.sin_port),
                           peers[i].rx, peers[i].tx, peers[i].tx_errors);
  }
  at += (size_t)snprintf(out + at, sizeof out - at, " snmp=");
  at = append_file(out, at, sizeof out, "/proc/net/snmp");
  at += (size_t)snprintf(out + at, sizeof out - at, " eth0_rx_dropped=");
  at = append_file(out, at, sizeof out, "/sys/class/net/eth0/statistics/rx_dropped");
  sendto(fd, out, at, 0, (const struct sockaddr*)to, len);
}

int main(int argc, char** argv) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7)};
  if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) < 0) return 1;
  int big = 32 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr*)&from, &len);
    if (n <= 0) continue;
    if (n >= 12 && memcmp(buf, "CUTOVER-STAT", 12) == 0) {
      find(&from); /* the asker keeps (or gets) its slot */
      stat_reply(fd, &from, len);
      continue;
    }
    struct peer* p = find(&from);
    if (p) ++p->rx;
    if (sendto(fd, buf, n, 0, (struct sockaddr*)&from, len) == n) {
      if (p) ++p->tx;
    } else if (p) {
      ++p->tx_errors;
    }
  }
}
