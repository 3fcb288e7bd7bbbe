/* web_assets.h: the feature page's files (web/), embedded at build time by tools/gen_web.c, so
 * the binary serves exactly the page it was built with and needs no web root at run time. */
#ifndef SAED_WEB_ASSETS_H
#define SAED_WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *name;         /* base name in web/, e.g. "feature.js" */
    const char *media_type;   /* Content-Type */
    const char *etag;         /* strong ETag, quoted: FNV-1a 64 of the bytes */
    const unsigned char *data;
    size_t len;
} web_asset;

extern const web_asset web_assets[];   /* generated: build/gen/web_assets.c */
extern const int web_n_assets;

/* The asset named exactly name (no paths: a name with '/' never matches), or NULL. */
const web_asset *web_asset_find(const char *name);

/* Whether an If-None-Match header value (a list of ETags, weak ones included, or "*") matches
 * etag, as RFC 9110's weak comparison asks for GET. */
int web_etag_matches(const char *if_none_match, const char *etag);

#endif
