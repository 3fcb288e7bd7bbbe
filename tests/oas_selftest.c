/* Self-test for the OpenAPI response validator (tests/oas.c). */
#include "oas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char spec[] =
    "openapi: 3.1.0\n"
    "info: {title: t, version: '1'}\n"
    "paths:\n"
    "  /api/models:\n"
    "    get:\n"
    "      responses:\n"
    "        200:\n"
    "          content:\n"
    "            application/json:\n"
    "              schema:\n"
    "                type: object\n"
    "                required: [items]\n"
    "                properties:\n"
    "                  items: {type: array, items: {$ref: '#/components/schemas/Model'}}\n"
    "        default: {$ref: '#/components/responses/Error'}\n"
    "    post:\n"
    "      responses: {'201': {description: created}}\n"
    "  /api/models/{id}:\n"
    "    get:\n"
    "      responses:\n"
    "        '200': {content: {application/json: {schema: {$ref: '#/components/schemas/Model'}}}}\n"
    "        4XX: {$ref: '#/components/responses/Error'}\n"
    "  /api/models/search:\n"
    "    get:\n"
    "      responses:\n"
    "        '200': {content: {text/plain: {schema: {type: string}}}}\n"
    "  /api/shapes:\n"
    "    get:\n"
    "      responses:\n"
    "        '200':\n"
    "          content:\n"
    "            application/json:\n"
    "              schema:\n"
    "                oneOf:\n"
    "                  - {type: object, required: [r], additionalProperties: false, properties: {r: {type: number}}}\n"
    "                  - {$ref: '#/components/schemas/a~1b~0c'}\n"
    "  /api/events:\n"
    "    get:\n"
    "      responses:\n"
    "        '200':\n"
    "          content:\n"
    "            text/event-stream:\n"
    "              itemSchema:\n"
    "                type: object\n"
    "                required: [data]\n"
    "                properties:\n"
    "                  event: {type: string, enum: [error]}\n"
    "                  data:\n"
    "                    type: string\n"
    "                    contentMediaType: application/json\n"
    "                    contentSchema: {type: object, required: [n], properties: {n: {type: integer}}}\n"
    "components:\n"
    "  responses:\n"
    "    Error:\n"
    "      content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}\n"
    "  schemas:\n"
    "    Model:\n"
    "      type: object\n"
    "      required: [id, name, kind]\n"
    "      properties:\n"
    "        id: {type: integer, minimum: 1}\n"
    "        name: {type: string, minLength: 1}\n"
    "        kind: {type: string, enum: [a, b]}\n"
    "        note: {type: [string, 'null']}\n"
    "    Error: {type: object, required: [error], properties: {error: {type: string}}}\n"
    "    a/b~c: {type: object, required: [side], additionalProperties: false, properties: {side: {type: integer}}}\n";

static int passed, failed;

/* want_ok: 1 if the response must validate; sub: expected error substring. */
static void expect(oas *o, int line, int want_ok, const char *sub, const char *m, const char *p, int st,
                   const char *ct, const char *body)
{
    char err[2048];
    int rc = oas_check(o, m, p, st, ct, body, body ? strlen(body) : 0, err, sizeof err);
    int ok = want_ok ? rc == 0 : (rc == -1 && (!sub || strstr(err, sub)));
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "line %d: FAIL rc=%d err=%s\n", line, rc, err);
    }
}
#define OK(...) expect(o, __LINE__, 1, NULL, __VA_ARGS__)
#define BAD(sub, ...) expect(o, __LINE__, 0, sub, __VA_ARGS__)
#define J "application/json"

static void collect(const char *m, const char *t, void *ud)
{
    char *b = ud;
    size_t n = strlen(b);
    snprintf(b + n, 256 - n, "%s %s;", m, t);
}

int main(void)
{
    char path[] = "/tmp/oas_selftest_XXXXXX", err[512];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, spec, sizeof spec - 1) != (ssize_t)(sizeof spec - 1))
        return 2;
    close(fd);
    oas *o = oas_load(path, err, sizeof err);
    unlink(path);
    if (!o) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }

    OK("GET", "/api/models", 200, J, "{\"items\":[{\"id\":1,\"name\":\"x\",\"kind\":\"a\",\"note\":null}]}");
    OK("GET", "/api/models/", 200, "application/json; charset=utf-8", "{\"items\":[]}");
    OK("GET", "/api/models?x=1", 500, J, "{\"error\":\"boom\"}"); /* default response */
    BAD("missing required property \"items\"", "GET", "/api/models", 200, J, "{}");
    BAD("body/items/0/id: expected type \"integer\", got string", "GET", "/api/models", 200, J,
        "{\"items\":[{\"id\":\"1\",\"name\":\"x\",\"kind\":\"a\"}]}");
    OK("GET", "/api/models/7", 200, J, "{\"id\":2.0,\"name\":\"x\",\"kind\":\"b\",\"note\":\"n\"}");
    BAD("expected one of", "GET", "/api/models/7", 200, J, "{\"id\":2,\"name\":\"x\",\"kind\":\"z\"}");
    BAD("body/note: expected type", "GET", "/api/models/7", 200, J, "{\"id\":2,\"name\":\"x\",\"kind\":\"a\",\"note\":3}");
    BAD(">= 1", "GET", "/api/models/7", 200, J, "{\"id\":0,\"name\":\"x\",\"kind\":\"a\"}");
    BAD("schemas/Error", "GET", "/api/models/7", 404, J, "{\"error\":5}"); /* 4XX via $ref */
    BAD("status 302 not documented", "GET", "/api/models/7", 302, J, "{}");
    BAD("not valid JSON", "GET", "/api/models/7", 200, J, "{");
    BAD("no path template", "GET", "/nope", 200, J, "{}");
    BAD("no path template", "GET", "/api/models/7/x", 200, J, "{}");
    BAD("no \"delete\" operation", "DELETE", "/api/models/7", 200, J, "{}");
    /* literal template wins over {id}, and text/plain is not JSON-parsed */
    OK("GET", "/api/models/search", 200, "text/plain; charset=utf-8", "hello");
    BAD("Content-Type \"application/json\" not documented", "GET", "/api/models/search", 200, J, "\"x\"");
    OK("GET", "/api/shapes", 200, J, "{\"r\":1.5}");
    OK("GET", "/api/shapes", 200, J, "{\"side\":2}"); /* via ~0/~1-escaped $ref */
    BAD("none of the 2 oneOf", "GET", "/api/shapes", 200, J, "{\"side\":2,\"r\":1}");
    BAD("missing Content-Type", "GET", "/api/shapes", 200, NULL, "{}");

    /* text/event-stream: every event against itemSchema, JSON data against contentSchema */
    OK("GET", "/api/events", 200, "text/event-stream", "data: {\"n\":1}\n\n: comment\n\nevent: error\ndata: {\"n\":2}\r\n\r\n");
    OK("GET", "/api/events", 200, "text/event-stream", "");
    BAD("body/event/1/data/n: expected type", "GET", "/api/events", 200, "text/event-stream",
        "data: {\"n\":1}\n\ndata: {\"n\":\"x\"}\n\n");
    BAD("at body/event/0/data: not valid JSON", "GET", "/api/events", 200, "text/event-stream", "data: {\n\n");
    BAD("event 1 does not end with a blank line", "GET", "/api/events", 200, "text/event-stream",
        "data: {\"n\":1}\n\ndata: {\"n\":2}\n");
    BAD("body/event/0/event: expected one of", "GET", "/api/events", 200, "text/event-stream", "event: x\ndata: {\"n\":1}\n\n");
    BAD("missing required property \"data\"", "GET", "/api/events", 200, "text/event-stream", "event: error\n\n");

    char list[256] = "";
    int n = oas_unexercised(o, collect, list);
    if (n == 1 && !strcmp(list, "POST /api/models;"))
        passed++;
    else
        failed++, fprintf(stderr, "unexercised: %d %s\n", n, list);
    oas_free(o);

    /* load errors name the file and line */
    if (!oas_load("/nonexistent.yaml", err, sizeof err) && strstr(err, "/nonexistent.yaml"))
        passed++;
    else
        failed++, fprintf(stderr, "missing file: %s\n", err);

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
