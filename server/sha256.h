/* sha256.h: SHA-256 (FIPS 180-4), streaming, for verifying Hub LFS downloads and naming LFS
 * uploads by their oid. Written here so that saed needs no crypto library. */
#ifndef SAED_SHA256_H
#define SAED_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* 64 lowercase hex digits and a NUL into hex. */
void sha256_final_hex(sha256_ctx *c, char hex[65]);
/* The digest of a whole file; 0, or -1 when it cannot be read. */
int sha256_file(const char *path, char hex[65]);

#endif
