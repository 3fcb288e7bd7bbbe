/* final_openapi.c: runs after every other test: each operation in openapi.yaml must have been
 * exercised by some test. */
#include "tests/oas.h"
#include "tests/srv.h"
#include "tests/t.h"

oas *tests_spec(void);

static void report(const char *method, const char *path, void *ud)
{
    (void)ud;
    t_fail(__FILE__, __LINE__, "openapi operation never exercised by a test: %s %s", method, path);
}

TEST(final_every_openapi_operation_exercised)
{
    if (!tdb_available()) {
        t_skip("API tests did not run (no test PostgreSQL)");
        return;
    }
    oas *o = tests_spec();
    CHECK(o != NULL);
    if (o) oas_unexercised(o, report, NULL);
}
