/* version.h — the project's version string, printed by every program's --version. */
#ifndef TINYKV_PROTO_VERSION_H
#define TINYKV_PROTO_VERSION_H

#define TINYKV_VERSION "0.1.0"

#endif
