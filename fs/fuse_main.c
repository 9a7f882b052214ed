/* fuse_main.c — tinykv-fuse (placeholder until the client library and mount land). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int help = argc > 1 && strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr,
            "usage: tinykv-fuse [-f] [-d] [-o scheduler=HOST:PORT,ro] MOUNTPOINT\n"
            "The filesystem front end has not landed in this build yet.\n");
    return help ? 0 : 2;
}
