/* rpc_internal.h — helpers shared by the gRPC server and client glue; not for other modules. */
#ifndef TINYKV_PROTO_RPC_INTERNAL_H
#define TINYKV_PROTO_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <protobuf-c/protobuf-c.h>

/* The whole (decompressed) content of a byte buffer; the caller unrefs the slice. */
grpc_slice rpc_byte_buffer_flatten(grpc_byte_buffer *bb);

/* A byte buffer holding `msg` packed; the caller destroys it. */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg);

/* grpc_init, and the first time, gRPC's lock checking off (rpc_client.c). */
void rpc_grpc_init(void);

#endif
