/* unit_config.c: the option table: defaults, precedence, bounds, and that every invalid value
 * is rejected with a message naming the option. */
#include <stdlib.h>

#include "server/config.h"
#include "tests/t.h"

static int load(saed_config *c, char *err, int argc, char **argv)
{
    return config_load(c, argc, argv, err, 512);
}

TEST(config_defaults)
{
    saed_config c;
    char err[512];
    unsetenv("SAED_LISTEN");
    unsetenv("SAED_HTTP_THREADS");
    CHECK_INT(load(&c, err, 0, NULL), 0);
    CHECK_STR(c.listen_host, "127.0.0.1");
    CHECK_INT(c.listen_port, 8080);
    CHECK_INT(c.body_limit, 8 << 20);
    CHECK_INT(c.n_api_keys, 0);
    CHECK_STR(c.migrations_dir, "migrations");
    CHECK(!c.v1_snake); /* upstream's server: camelCase */
    config_free(&c);
    char *snake[] = {"--v1-wire-case", "snake"};
    CHECK_INT(load(&c, err, 2, snake), 0);
    CHECK(c.v1_snake);
    config_free(&c);
}

TEST(config_env_then_flag_precedence)
{
    saed_config c;
    char err[512];
    setenv("SAED_HTTP_THREADS", "7", 1);
    setenv("SAED_LISTEN", "[::1]:9090", 1);
    CHECK_INT(load(&c, err, 0, NULL), 0);
    CHECK_INT(c.http_threads, 7);
    CHECK_STR(c.listen_host, "::1");
    CHECK_INT(c.listen_port, 9090);
    config_free(&c);
    char *argv[] = {"--http-threads", "9", "--body-limit=64K", "--insecure"};
    CHECK_INT(load(&c, err, 4, argv), 0);
    CHECK_INT(c.http_threads, 9);
    CHECK_INT(c.body_limit, 65536);
    CHECK(c.insecure);
    config_free(&c);
    unsetenv("SAED_HTTP_THREADS");
    unsetenv("SAED_LISTEN");
}

static void expect_error(char **argv, int argc, const char *needle)
{
    saed_config c;
    char err[512] = "";
    CHECK_INT(config_load(&c, argc, argv, err, sizeof err), -1);
    CHECK_CONTAINS(err, needle);
    config_free(&c);
}

TEST(config_invalid_values_name_the_option)
{
    expect_error((char *[]){"--http-threads", "0"}, 2, "--http-threads");
    expect_error((char *[]){"--http-threads", "4x"}, 2, "not an integer");
    expect_error((char *[]){"--body-limit", "10X"}, 2, "--body-limit");
    expect_error((char *[]){"--body-limit", "2G"}, 2, "out of range");
    expect_error((char *[]){"--listen", "localhost"}, 2, "--listen");
    expect_error((char *[]){"--listen", "127.0.0.1:70000"}, 2, "--listen");
    expect_error((char *[]){"--log-level", "loud"}, 2, "--log-level");
    expect_error((char *[]){"--api-keys", "short"}, 2, "SAED_API_KEYS");
    expect_error((char *[]){"--data-roots", "/nonexistent/saed-test"}, 2, "SAED_DATA_ROOTS");
    expect_error((char *[]){"--no-such-option"}, 1, "unknown option");
    expect_error((char *[]){"--workers"}, 1, "needs a value");
    expect_error((char *[]){"--insecure=maybe"}, 1, "--insecure");
    expect_error((char *[]){"--v1-wire-case", "Snake"}, 2, "SAED_V1_WIRE_CASE (--v1-wire-case): 'Snake' is not one of camel, snake");
    setenv("SAED_WORKERS", "-1", 1);
    expect_error(NULL, 0, "SAED_WORKERS");
    unsetenv("SAED_WORKERS");
}

TEST(config_lists)
{
    saed_config c;
    char err[512];
    char *argv[] = {"--api-keys", " aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbbbbbb,", "--data-roots", "/tmp:/"};
    CHECK_INT(load(&c, err, 4, argv), 0);
    CHECK_INT(c.n_api_keys, 2);
    CHECK_STR(c.api_keys[0], "aaaaaaaaaaaaaaaa");
    CHECK_STR(c.api_keys[1], "bbbbbbbbbbbbbbbbbbbb");
    CHECK_INT(c.n_data_roots, 2);
    CHECK_STR(c.data_roots[1], "/");
    config_free(&c);
}

TEST(config_size_suffixes)
{
    CHECK_INT(config_parse_size("1024"), 1024);
    CHECK_INT(config_parse_size("8M"), 8 << 20);
    CHECK_INT(config_parse_size("2KiB"), 2048);
    CHECK_INT(config_parse_size("1g"), 1 << 30);
    CHECK_INT(config_parse_size("-1"), -1);
    CHECK_INT(config_parse_size("12Q"), -1);
    CHECK_INT(config_parse_size(""), -1);
}
