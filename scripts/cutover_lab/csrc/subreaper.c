/* subreaper: runs a daemon (libvirtd) as a child subreaper so that the QEMU processes it
 * orphans are reaped at once, not by a slow PID 1 (libvirt waits for them). Forwards TERM/INT/HUP
 * to the daemon and exits with its status. */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;
static void forward(int sig) {
  if (child > 0) kill(child, sig);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: subreaper PROGRAM [ARGS...]\n");
    return 2;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  child = fork();
  if (child == 0) {
    execv(argv[1], argv + 1);
    perror(argv[1]);
    _exit(127);
  }
  signal(SIGTERM, forward);
  signal(SIGINT, forward);
  signal(SIGHUP, forward);
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (pid < 0) return 1;
  }
}
