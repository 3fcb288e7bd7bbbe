/* cmd_dashboards.h: `saed dashboards`: one dashboard job run in-process, without server or
 * database, writing the exports directly. Operators and benchmarks use it. */
#ifndef SAED_CMD_DASHBOARDS_H
#define SAED_CMD_DASHBOARDS_H

/* argv after "dashboards"; returns the exit status. */
int cmd_dashboards(int argc, char **argv);

#endif
