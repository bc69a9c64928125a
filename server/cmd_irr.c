/* cmd_irr.c - placeholder until the reliability statistics land. */
#include <stdio.h>

#include "commands.h"

int cmd_irr(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "accord irr: not built yet\n");
    return 1;
}
