/* server_main.c — tinyscheduler-server (placeholder until the scheduler lands). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int help = argc > 1 && strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr,
            "usage: tinyscheduler-server [--addr HOST:PORT] [--http-addr HOST:PORT] "
            "[--data-dir DIR]\n"
            "The scheduler has not landed in this build yet.\n");
    return help ? 0 : 2;
}
