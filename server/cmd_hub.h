/* cmd_hub.h: `saed pull` and `saed push-sae`, the Hugging Face Hub from the command line. */
#ifndef SAED_CMD_HUB_H
#define SAED_CMD_HUB_H

/* argv after the command name; exit status 0, 1 (failed) or 2 (usage). */
int cmd_pull(int argc, char **argv);
int cmd_push_sae(int argc, char **argv);

#endif
