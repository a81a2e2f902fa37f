/* nvmeio DEV REPORT_IP REPORT_PORT: the lab guest's storage workload. Writes 4 KiB blocks with
 * O_DIRECT to DEV (each carrying its sequence number), reads each back and verifies it, forever,
 * and reports every completed write+read pair with one UDP datagram to REPORT_IP:REPORT_PORT:
 * 8 bytes sequence (big endian), 1 byte status (0 ok, 1 I/O error, 2 verify mismatch), 4 bytes
 * duration in microseconds. The receiver timestamps them with the host clock (the guest clock
 * stops while the VM is paused), so the I/O stall across a migration is measured host-side. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define SPAN 1024 /* blocks cycled through: 4 MiB */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: nvmeio DEV REPORT_IP REPORT_PORT\n");
    return 2;
  }
  int fd = open(argv[1], O_RDWR | O_DIRECT);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)atoi(argv[3]));
  inet_pton(AF_INET, argv[2], &to.sin_addr);
  unsigned char *wbuf, *rbuf;
  if (posix_memalign((void**)&wbuf, BLOCK, BLOCK) || posix_memalign((void**)&rbuf, BLOCK, BLOCK))
    return 1;
  for (uint64_t seq = 0;; ++seq) {
    const off_t off = (off_t)(seq % SPAN) * BLOCK;
    for (int i = 0; i < BLOCK; i += 8) memcpy(wbuf + i, &seq, 8);
    const uint64_t t0 = now_us();
    unsigned char status = 0;
    if (pwrite(fd, wbuf, BLOCK, off) != BLOCK || pread(fd, rbuf, BLOCK, off) != BLOCK) {
      status = 1;
    } else if (memcmp(wbuf, rbuf, BLOCK) != 0) {
      status = 2;
    }
    const uint32_t took = (uint32_t)(now_us() - t0);
    unsigned char msg[13];
    for (int i = 0; i < 8; ++i) msg[i] = (unsigned char)(seq >> (56 - 8 * i));
    msg[8] = status;
    for (int i = 0; i < 4; ++i) msg[9 + i] = (unsigned char)(took >> (24 - 8 * i));
    sendto(s, msg, sizeof msg, 0, (struct sockaddr*)&to, sizeof to);
    if (status) usleep(10000); /* do not spin on a dead path */
  }
}
