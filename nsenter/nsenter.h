#ifndef NODEDEBUG_NSENTER_H
#define NODEDEBUG_NSENTER_H

#define REPORT_FD 3
#define EXIT_SETUP 125

// fail reports "error WHAT ARG: errno's text" to the agent and exits.
void fail(const char *what, const char *arg) __attribute__((noreturn));

// enter_root builds the toolbox root under scratch and pivots into it.
void enter_root(const char *rootfs, const char *scratch);

#endif
