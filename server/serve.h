/* serve.h: the `saed serve` sub-command. */
#ifndef SAED_SERVE_H
#define SAED_SERVE_H

#include "server/config.h"

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int serve_main(saed_config *cfg);

#endif
