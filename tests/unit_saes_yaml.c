/* unit_saes_yaml.c: pretrained_saes.yaml edited as text (server/saes_yaml.c): the expected
 * files are written out by hand here, byte for byte, in the layouts SAELens' own file uses
 * (block entries, flow entries, comments, quoted keys). */
#include <stdlib.h>
#include <string.h>

#include "server/saes_yaml.h"
#include "tests/t.h"

/* The export's release for an SAE at path with l0. */
static json_t *entry(const char *path, double l0)
{
    return json_pack("{s:s,s:s,s:n,s:[{s:s,s:s,s:f,s:s}]}", "repo_id", "me/tiny-saes", "model", "tiny-a", "conversion_func", "saes",
                     "id", "blocks.1.hook_resid_pre", "path", path, "l0", l0, "neuronpedia", "tiny-a/1-jr");
}

static void merged(const char *text, const char *path, double l0, const char *want, const char *want_release, int want_rc)
{
    json_t *e = entry(path, l0);
    char *out = NULL, rel[100] = "", err[300] = "";
    int rc = saes_yaml_merge(text, e, "tiny-saes", &out, rel, sizeof rel, err, sizeof err);
    CHECK_INT(rc, want_rc);
    if (want_rc == SY_OK) {
        CHECK_STR(out, want);
        CHECK_STR(rel, want_release);
    } else {
        CHECK(out == NULL);
        CHECK(strlen(err) > 0);
    }
    free(out);
    json_decref(e);
}

#define OTHER "# Hand-edited: keep me.\n" \
              "gpt2-small-res-jb:\n" \
              "  model: gpt2-small   # TransformerLens name\n" \
              "  repo_id: jbloom/GPT2-Small-SAEs-Reformatted\n" \
              "  saes:\n" \
              "    - {id: blocks.0.hook_resid_pre,  l0: 10.0, neuronpedia: gpt2-small/0-res-jb}\n" \
              "    - {id: blocks.1.hook_resid_pre,  l0: 10.0}\n"
#define NEW_REL "tiny-saes:\n" \
                "  repo_id: me/tiny-saes\n" \
                "  model: tiny-a\n" \
                "  conversion_func: null\n" \
                "  saes:\n" \
                "  - id: blocks.1.hook_resid_pre\n" \
                "    path: blocks.1/jr\n" \
                "    l0: 12.5\n" \
                "    neuronpedia: tiny-a/1-jr\n"

TEST(unit_saes_yaml_new_release_keeps_every_other_byte)
{
    /* Appended after the last release's content, before the closing comment. */
    merged(OTHER "\n# end\n", "blocks.1/jr", 12.5, OTHER NEW_REL "\n# end\n", "tiny-saes", SY_OK);
    /* A last line without a line break gets one. */
    merged("a:\n  repo_id: x/y", "blocks.1/jr", 12.5, "a:\n  repo_id: x/y\n" NEW_REL, "tiny-saes", SY_OK);
    /* A new file; and one holding only a comment. */
    merged(NULL, "blocks.1/jr", 12.5, NEW_REL, "tiny-saes", SY_OK);
    merged("# nothing yet\n", "blocks.1/jr", 12.5, "# nothing yet\n" NEW_REL, "tiny-saes", SY_OK);
    /* Four-space files get four-space releases. */
    merged("a:\n    repo_id: x/y\n", "p0", 1,
           "a:\n    repo_id: x/y\ntiny-saes:\n    repo_id: me/tiny-saes\n    model: tiny-a\n    conversion_func: null\n"
           "    saes:\n    - id: blocks.1.hook_resid_pre\n      path: p0\n      l0: 1\n      neuronpedia: tiny-a/1-jr\n",
           "tiny-saes", SY_OK);
}

TEST(unit_saes_yaml_existing_release)
{
    /* The release holding the repo keeps its own name; a flow-style list gets a flow entry. */
    const char *flow = "mine:  # ours\n"
                       "  repo_id: \"me/tiny-saes\"\n"
                       "  saes:\n"
                       "    - {id: a, path: blocks.0/jr, l0: 3}\n"
                       "    # a comment between entries\n"
                       "    - {id: b, path: blocks.2/jr, l0: 4}\n"
                       "\n"
                       "zzz:\n"
                       "  repo_id: other/repo\n";
    merged(flow, "blocks.1/jr", 7.25,
           "mine:  # ours\n  repo_id: \"me/tiny-saes\"\n  saes:\n    - {id: a, path: blocks.0/jr, l0: 3}\n"
           "    # a comment between entries\n    - {id: b, path: blocks.2/jr, l0: 4}\n"
           "    - {id: blocks.1.hook_resid_pre, path: blocks.1/jr, l0: 7.25, neuronpedia: tiny-a/1-jr}\n\nzzz:\n  repo_id: other/repo\n",
           "mine", SY_OK);
    /* The same path again: replaced where it stands, in its own style. */
    merged(flow, "blocks.0/jr", 9,
           "mine:  # ours\n  repo_id: \"me/tiny-saes\"\n  saes:\n"
           "    - {id: blocks.1.hook_resid_pre, path: blocks.0/jr, l0: 9, neuronpedia: tiny-a/1-jr}\n"
           "    # a comment between entries\n    - {id: b, path: blocks.2/jr, l0: 4}\n\nzzz:\n  repo_id: other/repo\n",
           "mine", SY_OK);
    /* Block entries, one replaced in the middle (its extra field goes with it). */
    const char *block = "r:\n  repo_id: me/tiny-saes\n  saes:\n  - id: a\n    path: p1\n  - id: b\n    path: blocks.1/jr\n"
                        "    variance_explained: 0.9\n  - id: c\n    path: p3\n";
    merged(block, "blocks.1/jr", 2,
           "r:\n  repo_id: me/tiny-saes\n  saes:\n  - id: a\n    path: p1\n  - id: blocks.1.hook_resid_pre\n    path: blocks.1/jr\n"
           "    l0: 2\n    neuronpedia: tiny-a/1-jr\n  - id: c\n    path: p3\n",
           "r", SY_OK);
    /* An empty list, and none at all. */
    merged("r:\n  repo_id: me/tiny-saes\n  saes: []  # none yet\nq: 1\n", "p", 1,
           "r:\n  repo_id: me/tiny-saes\n  saes: # none yet\n  - id: blocks.1.hook_resid_pre\n    path: p\n    l0: 1\n"
           "    neuronpedia: tiny-a/1-jr\nq: 1\n",
           "r", SY_OK);
    merged("r:\n  repo_id: me/tiny-saes\nq: 1\n", "p", 1,
           "r:\n  repo_id: me/tiny-saes\n  saes:\n  - id: blocks.1.hook_resid_pre\n    path: p\n    l0: 1\n"
           "    neuronpedia: tiny-a/1-jr\nq: 1\n",
           "r", SY_OK);
    /* CRLF files stay CRLF. */
    merged("r:\r\n  repo_id: me/tiny-saes\r\n  saes:\r\n  - id: a\r\n    path: p1\r\n", "p2", 1,
           "r:\r\n  repo_id: me/tiny-saes\r\n  saes:\r\n  - id: a\r\n    path: p1\r\n  - id: blocks.1.hook_resid_pre\r\n"
           "    path: p2\r\n    l0: 1\r\n    neuronpedia: tiny-a/1-jr\r\n",
           "r", SY_OK);
}

TEST(unit_saes_yaml_quoting_and_refusals)
{
    /* Strings that would read as numbers or YAML 1.1 booleans are quoted. */
    json_t *e = json_pack("{s:s,s:s,s:[{s:s,s:s,s:s}]}", "repo_id", "me/r", "model", "no", "saes", "id", "123", "path", "on",
                          "neuronpedia", "a b:c");
    char *out = NULL, rel[100], err[300];
    CHECK_INT(saes_yaml_merge("", e, "r", &out, rel, sizeof rel, err, sizeof err), SY_OK);
    CHECK_STR(out, "r:\n  repo_id: me/r\n  model: \"no\"\n  saes:\n  - id: \"123\"\n    path: \"on\"\n    neuronpedia: \"a b:c\"\n");
    free(out);
    json_decref(e);
    /* The default name taken by another repo's release; not YAML; not a mapping; a flow list with entries. */
    merged("tiny-saes:\n  repo_id: someone/else\n", "p", 1, NULL, NULL, SY_CONFLICT);
    merged("a: [\n", "p", 1, NULL, NULL, SY_INVALID);
    merged("- a\n- b\n", "p", 1, NULL, NULL, SY_INVALID);
    merged("r:\n  repo_id: me/tiny-saes\n  saes: [{id: a}]\n", "p", 1, NULL, NULL, SY_LAYOUT);
}
