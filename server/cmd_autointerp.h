/* cmd_autointerp.h: `saed autointerp`: queue an AutoInterp job and run it in this process. */
#ifndef SAED_SERVER_CMD_AUTOINTERP_H
#define SAED_SERVER_CMD_AUTOINTERP_H

#include "server/config.h"

/* job_file: the body of POST /api/autointerp-jobs ("-": standard input). 0 when the job
 * completed; 1 when it failed or could not run. */
int cmd_autointerp(const saed_config *cfg, const char *job_file);

#endif
