/* web.c: the feature page (web/, embedded in the binary): GET / (models, SAEs, job progress,
 * explanation search), GET /feature/{modelId}/{layer}/{index} (one feature; the page reads the
 * feature from /api/feature itself, so an unknown feature is the page's message, not a 404)
 * and GET /static/{name}. Every reply carries the file's ETag and Cache-Control: no-cache, so a
 * browser revalidates (304) and never runs a page older than the binary. */
#include <string.h>

#include "handlers/handlers.h"
#include "server/web_assets.h"

static void no_free(void *cls) { (void)cls; }

static void reply_asset(http_req *r, const web_asset *a)
{
    http_add_header(r, "ETag", a->etag);
    http_add_header(r, "Cache-Control", "no-cache");
    http_add_header(r, "X-Content-Type-Options", "nosniff");
    /* The page loads nothing from elsewhere and has no inline script. */
    if (strstr(a->media_type, "text/html"))
        http_add_header(r, "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'");
    if (web_etag_matches(http_header(r, "If-None-Match"), a->etag)) {
        http_reply_raw(r, 304, NULL, "", 0);
        return;
    }
    /* The bytes live in the binary: sent without a copy. */
    http_reply_shared(r, 200, a->media_type, (const char *)a->data, a->len, no_free, NULL);
}

static void reply_named(http_req *r, const char *name)
{
    const web_asset *a = web_asset_find(name);
    if (!a) {
        http_reply_error(r, 404, "not_found", "no such file: %s", name);
        return;
    }
    reply_asset(r, a);
}

void h_web_index(http_req *r) { reply_named(r, "index.html"); }

void h_web_feature(http_req *r) { reply_named(r, "feature.html"); }

void h_web_static(http_req *r) { reply_named(r, http_param(r, "name")); }
