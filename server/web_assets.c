/* web_assets.c: lookup over the embedded web files and the If-None-Match comparison. */
#include <string.h>

#include "server/web_assets.h"

const web_asset *web_asset_find(const char *name)
{
    if (!name || strchr(name, '/')) return NULL;
    for (int i = 0; i < web_n_assets; i++)
        if (!strcmp(web_assets[i].name, name)) return &web_assets[i];
    return NULL;
}

int web_etag_matches(const char *inm, const char *etag)
{
    if (!inm || !etag) return 0;
    size_t el = strlen(etag);
    const char *p = inm;
    while (*p) {
        p += strspn(p, " \t,");
        if (!*p) break;
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2;
        size_t tl = strcspn(p, ",");
        while (tl && (p[tl - 1] == ' ' || p[tl - 1] == '\t')) tl--;
        if (tl == el && !memcmp(p, etag, el)) return 1;
        p += strcspn(p, ",");
    }
    return 0;
}
