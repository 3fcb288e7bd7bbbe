/* dash_export.h: writes a dashboard run (dash_run.h) to disk in the two layouts that already
 * exist around Neuronpedia, so their tools read saed's output unchanged:
 *
 *  - SAEDashboard's NeuronpediaRunner output (shared/reference/saelens-saedashboard.md §3.4):
 *      {dir}/run_settings.json             NeuronpediaRunnerConfig-like settings + "saed" block
 *      {dir}/batch-N.json                  features [N·B, N·B+B-1] of the result, B =
 *                                          n_features_per_batch (128); partial where the
 *                                          result's range cuts a batch. SAEDashboard splits
 *                                          range(d_sae) with np.array_split, which differs
 *                                          only when d_sae is not a multiple of B.
 *    Example windows drop position 0 when prepend_bos (ctx−1 tokens and values,
 *    qualifying_token_index = pos − 1), as SAEDashboard does.
 *
 *  - Neuronpedia's bulk-import export (shared/reference/neuronpedia-api.md §5): the caller
 *    picks dir, conventionally {root}/{modelId}/{sourceId}:
 *      {dir}/release.jsonl, model.jsonl, sourceset.jsonl, source.jsonl   one row each
 *      {dir}/features/batch-N.jsonl.gz      Neuron rows of indices [1024N, 1024N+1023]
 *      {dir}/activations/batch-N.jsonl.gz   Activation rows of the same index range
 *      {dir}/explanations/                  empty: saed's explanation export comes later
 *    Neuronpedia's own export orders features by TEXT index ("0","1","10",...) in slices of
 *    1024; saed's batches are numeric ranges for features and activations alike. The
 *    importer keys rows by (layer, index), not by batch number, so both load the same.
 *    Example windows keep the whole prompt (BOS included); qualifyingTokenIndex = pos.
 *    A batch whose range holds features of the result is written even when no feature in it
 *    fires (its activations file is then an empty gzip stream).
 *
 * Numbers: activation values, bin edges, logits, histogram centres, alignment, correlations
 * and cosine similarities are rounded to 5 decimals (SAEDashboard rounds example values to 4
 * then 5 decimals; its tables to 3); the top group's bin_max is the feature max at 3 decimals
 * as SAEDashboard's title carries it; frac_nonzero and bin_contains are written unrounded
 * (SAEDashboard's ≈1e-5 resolution would flatten rare features to 0). Counts are integers.
 * maxValue / maxValueTokenIndex (first index of the max) / minValue / maxActApprox are
 * computed from the rounded values actually written.
 *
 * BOS: positions holding bos_id are written with value 0 in both layouts: the statistics
 * mask them (dash_run.h), and Neuronpedia's converter offers the same --zero-out-bos-token;
 * without it a BOS activation would be a window's maxValue.
 *
 * Activation ids: deterministic pseudo-cuids, "c" + 24 lowercase base-36 characters from two
 * independent 64-bit hashes of (modelId, sourceId, index, example number) — the model is in
 * the key so two models with the same source id do not collide. Same inputs give the same
 * file bytes (gzip headers carry no time; createdAt comes from the metadata).
 *
 * Files are written to NAME.tmp and renamed into place (no fsync); directories are created.
 * Errors return -1 with err naming the file. It does NOT compute anything (dash_run does),
 * read datasets, talk to SQL/HTTP, or write explanations, skipped_indexes.json or tokens.pt.
 * Thread-safety: the writers share no state; one call per output directory at a time. */
#ifndef SAED_ENGINE_DASH_EXPORT_H
#define SAED_ENGINE_DASH_EXPORT_H

#include <jansson.h>   // defines: json_t
#include <stddef.h>
#include <stdint.h>

#include "engine/dash_run.h"   // defines: dash_run_result, dash_run_opts
#include "engine/tokenizer.h"  // defines: tokenizer

typedef struct dash_export_meta {
    /* -- required -- */
    const char *model_id;        /* Neuronpedia model id, "gpt2-small" */
    const char *source_id;       /* Neuronpedia source id = Neuron.layer, "8-res-jb" */
    const char *set_name;        /* source set, "res-jb" (SAEDashboard's np_set_name) */
    int layer;                   /* layer number (SAEDashboard's int "layer") */
    const char *hook_name;       /* "blocks.8.hook_resid_pre" */
    const char *dataset;         /* prompts' dataset, "Skylion007/openwebtext" */
    int n_prompts;               /* rows of prompts; 0 = the result's; must match it */
    int n_tokens_in_prompt;      /* T; 0 = the result's; must match it */
    int prepend_bos;             /* position 0 holds BOS: SAEDashboard windows drop it */
    int bos_id;                  /* its positions are written as 0; -1 = none */
    int d_sae;                   /* the SAE's width; 0 = the result's f1 */
    const char *creator_name;    /* SourceRelease / SourceSet creatorName */
    const char *release_id;      /* SourceRelease.name, "gpt2sm-res-jb" */
    const char *release_title;   /* SourceRelease.description */
    const char *created_at;      /* ISO 8601 for every createdAt; NULL = now (UTC) */
    const int32_t *prompts;      /* (n_prompts, T) token ids the result was computed on */
    const tokenizer *tok;        /* display strings (tok_token_str) */
    /* -- optional (NULL / 0 = the default in brackets) -- */
    const char *creator_id;      /* Neuronpedia creatorId [creator_name] */
    const char *url;             /* release / source-set URL [none] */
    const char *set_description; /* SourceSet.description ["{hook_name}, {d_sae} features"] */
    const char *saelens_release; /* SAELens release: run_settings sae_set, Source.saelensRelease [set_name] */
    const char *saelens_sae_id;  /* SAELens sae id: run_settings sae_path, Source.saelensSaeId [hook_name] */
    const char *hf_repo_id, *hf_folder_id; /* Source.hfRepoId / hfFolderId [null] */
    int model_layers;            /* Model.layers [0] */
    int d_model;                 /* Model.dimension [null] */
    const dash_run_opts *run;    /* the options of the run, for run_settings.json [defaults] */
    int n_features_per_batch;    /* SAEDashboard batch size [128] */
} dash_export_meta;

/* SAEDashboard layout into dir. 0, or -1 with err. */
int dash_export_saedashboard(const char *dir, const dash_export_meta *m, const dash_run_result *r, char *err,
                             size_t errlen);

/* Neuronpedia bulk-import layout into dir. 0, or -1 with err. */
int dash_export_neuronpedia(const char *dir, const dash_export_meta *m, const dash_run_result *r, char *err,
                            size_t errlen);

/* The one place an example becomes JSON, used by both writers: example e of the result's
 * feature fi (0-based in the result), as SAEDashboard's activation object
 * (DASH_EXPORT_SAEDASHBOARD) or as a Neuronpedia Activation row (DASH_EXPORT_NEURONPEDIA).
 * New reference, or NULL with err. */
enum { DASH_EXPORT_SAEDASHBOARD = 0, DASH_EXPORT_NEURONPEDIA = 1 };
json_t *dash_export_example(const dash_export_meta *m, const dash_run_result *r, int fi, int e, int style, char *err,
                            size_t errlen);

/* The Neuronpedia Neuron row of the result's feature fi. New reference, or NULL with err. */
json_t *dash_export_neuron(const dash_export_meta *m, const dash_run_result *r, int fi, char *err, size_t errlen);

/* The Activation id of example e of feature index (absolute): 25 characters + NUL. */
void dash_export_activation_id(const char *model_id, const char *source_id, int index, int e, char out[26]);

#endif
