/* saes_yaml.h: a pretrained_saes.yaml edited as text, for the Hub repo's file (hub_push.c) and
 * for SAELens' own file in a GitHub pull request (gh_pr.c). SAELens' file is large and edited
 * by hand (comments, flow-style entries, its own key order and quoting), so the file is never
 * re-serialised: libyaml's events locate the release, its `saes` list and each entry by line,
 * and only this SAE's entry lines are replaced or inserted; every other byte stays as it was.
 * Does not validate SAELens' schema beyond what it edits. */
#ifndef SAED_SAES_YAML_H
#define SAED_SAES_YAML_H

#include <jansson.h>
#include <stddef.h>

enum { SY_OK = 0, SY_INVALID = -1, SY_CONFLICT = -2, SY_LAYOUT = -3 };

/* Puts the SAE of entry into text (NULL or "": a new file). entry is one release as the export
 * writes it: {repo_id, model, conversion_func, ..., saes: [sae]} with scalar fields and sae an
 * object of scalars (id, path, l0, neuronpedia, ...). The release whose repo_id is entry's keeps
 * its name (and its other fields); without one, a release named release_default is appended
 * to the file. Within the release an entry with the same path is replaced in place, in the
 * style (block or flow) it had; else the SAE is appended to `saes` in the style of the last
 * entry. Returns SY_OK with *out (malloc'd) and release filled, or: SY_INVALID (not YAML, not
 * a mapping of releases), SY_CONFLICT (release_default names another repo's release),
 * SY_LAYOUT (a shape this editor does not rewrite, e.g. a non-empty flow `saes: [...]`), with
 * err. */
int saes_yaml_merge(const char *text, const json_t *entry, const char *release_default, char **out, char *release,
                    size_t rn, char *err, size_t errlen);

#endif
