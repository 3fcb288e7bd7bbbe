// drive.mjs CLIENT_DIR BASE_URL SECRET EXPECT_JSON: drives saed's /v1 routes through the npm
// package neuronpedia-inference-client (the generated TypeScript client Neuronpedia's webapp
// calls its inference server with), unpacked at CLIENT_DIR. EXPECT_JSON (written by
// tests/api_v1_client.c) names the model, SAE and prompts and carries values computed apart
// from these routes (`saed encode`). Prints "ok NAME" or "FAIL NAME: why" per case and a closing
// "N ok, M failed"; exits 1 on any failure.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const [clientDir, base, secret, expectFile] = process.argv.slice(2);
const np = createRequire(import.meta.url)(resolve(clientDir, 'dist/index.js'));
const ex = JSON.parse(readFileSync(expectFile, 'utf8'));
const api = new np.DefaultApi(new np.Configuration({ basePath: `${base}/v1`, apiKey: secret }));
const { model, source } = ex;

// 1.9.0's models lack some fields 1.10.1 has (tokensIsSpecial, isSpecial): check those only
// where the client reads them.
const reads = (fromJSONTyped, key) => fromJSONTyped.toString().includes(`'${key}':`);

let ok = 0, failed = 0;
function check(cond, what) { if (!cond) throw new Error(what); }
const near = (a, b) => Math.abs(a - b) <= 1e-5 * (1 + Math.abs(b));
function sameValues(got, want, what) {
  check(Array.isArray(got) && got.length === want.length, `${what}: ${got?.length} values, wanted ${want.length}`);
  got.forEach((v, i) => check(near(v, want[i]), `${what}[${i}] = ${v}, wanted ${want[i]}`));
}
async function status(p) {
  try { await p; } catch (e) {
    // The client is compiled to ES5, where instanceof fails on Error subclasses: look for the response.
    if (e && e.response) return [e.response.status, await e.response.json()];
    throw e;
  }
  return [200, null];
}

const cases = {
  async tokenize() {
    const r = await api.tokenizePost({ tokenizePostRequest: { model, text: ex.prompt } });
    check(JSON.stringify(r.tokens) === JSON.stringify(ex.ids), `tokens ${r.tokens} != ${ex.ids}`);
    check(JSON.stringify(r.tokenStrings) === JSON.stringify(ex.tokens), `tokenStrings ${r.tokenStrings}`);
    check(r.prependBos === true, `prependBos ${r.prependBos}`);
    const nb = await api.tokenizePost({ tokenizePostRequest: { model, text: ex.prompt, prependBos: false } });
    check(JSON.stringify(nb.tokens) === JSON.stringify(ex.ids.slice(1)), 'prependBos false keeps the BOS');
    check(nb.prependBos === false, 'prependBos false not echoed');
  },
  async activationSingle() {
    const r = await api.activationSinglePost({ activationSinglePostRequest: { prompt: ex.prompt, model, source, index: String(ex.feature) } });
    sameValues(r.activation.values, ex.values, 'values');
    const max = Math.max(...ex.values);
    check(near(r.activation.maxValue, max), `maxValue ${r.activation.maxValue}, wanted ${max}`);
    check(r.activation.maxValueIndex === ex.values.indexOf(max), `maxValueIndex ${r.activation.maxValueIndex}`);
    check(r.tokens.length === ex.values.length, 'tokens length');
    if (reads(np.ActivationSinglePost200ResponseFromJSONTyped, 'tokensIsSpecial'))
      check(r.tokensIsSpecial.length === ex.values.length && r.tokensIsSpecial.every((b) => b === false), `tokensIsSpecial ${r.tokensIsSpecial}`);
  },
  async activationSingleBatch() {
    const r = await api.activationSingleBatchPost({ activationSingleBatchPostRequest: { prompts: [ex.prompt, ex.prompt2], model, source, index: String(ex.feature) } });
    check(r.results.length === 2, `${r.results.length} results`);
    sameValues(r.results[0].activation.values, ex.values, 'results[0].values');
    const one = await api.activationSinglePost({ activationSinglePostRequest: { prompt: ex.prompt2, model, source, index: String(ex.feature) } });
    sameValues(r.results[1].activation.values, one.activation.values, 'results[1].values');
    check(JSON.stringify(r.results[1].tokens) === JSON.stringify(one.tokens), 'results[1].tokens');
  },
  async topkByToken() {
    const r = await api.activationTopkByTokenPost({ activationTopkByTokenPostRequest: { prompt: ex.prompt, model, source, topK: 3, ignoreBos: false } });
    check(r.tokens.length === ex.ids.length && r.results.length === ex.ids.length, `${r.results.length} rows, ${ex.ids.length} tokens`);
    r.results.forEach((row, p) => {
      check(row.tokenPosition === p && row.token === ex.tokens[p], `row ${p}: position ${row.tokenPosition}, token ${row.token}`);
      if (reads(np.ActivationTopkByTokenPost200ResponseResultsInnerFromJSONTyped, 'isSpecial'))
        check(row.isSpecial === (p === 0), `row ${p}: isSpecial ${row.isSpecial}`);
      check(row.topFeatures.length <= 3, `row ${p}: ${row.topFeatures.length} features`);
      for (let j = 1; j < row.topFeatures.length; j++)
        check(row.topFeatures[j - 1].activationValue >= row.topFeatures[j].activationValue, `row ${p} unsorted`);
    });
    const last = r.results[r.results.length - 1].topFeatures[0];
    check(last.featureIndex === ex.lastTop[0] && near(last.activationValue, ex.lastTop[1]),
      `last token's top feature ${last.featureIndex}=${last.activationValue}, wanted ${ex.lastTop}`);
  },
  async topkByTokenBatch() {
    const r = await api.activationTopkByTokenBatchPost({ activationTopkByTokenBatchPostRequest: { prompts: [ex.prompt, ex.prompt2], model, source, topK: 3, ignoreBos: true } });
    check(r.results.length === 2, `${r.results.length} results`);
    for (const [i, prompt] of [ex.prompt, ex.prompt2].entries()) {
      const one = await api.activationTopkByTokenPost({ activationTopkByTokenPostRequest: { prompt, model, source, topK: 3, ignoreBos: true } });
      check(JSON.stringify(r.results[i]) === JSON.stringify(one), `results[${i}] differs from the single route`);
    }
  },
  async activationAll() {
    const req = { prompt: ex.prompt, model, sourceSet: ex.sourceSet, selectedSources: [source], sortByTokenIndexes: [], ignoreBos: false, numResults: 5 };
    const r = await api.activationAllPost({ activationAllPostRequest: req });
    check(r.activations.length === 5, `${r.activations.length} activations`);
    for (let j = 1; j < 5; j++) check(r.activations[j - 1].maxValue >= r.activations[j].maxValue, 'not sorted by maxValue');
    for (const a of r.activations) {
      check(a.source === source, `source ${a.source}`);
      check(a.values.length === r.tokens.length, `feature ${a.index}: ${a.values.length} values, ${r.tokens.length} tokens`);
      const one = await api.activationSinglePost({ activationSinglePostRequest: { prompt: ex.prompt, model, source, index: String(a.index) } });
      sameValues(a.values.slice(a.values.length - one.activation.values.length), one.activation.values, `feature ${a.index}`);
    }
    const b = await api.activationAllBatchPost({ activationAllBatchPostRequest: { ...req, prompt: undefined, prompts: [ex.prompt] } });
    check(JSON.stringify(b.results[0].activations) === JSON.stringify(r.activations), 'all-batch differs from all');
  },
  async activationSource() {
    const r = await api.activationSourcePost({ activationSourcePostRequest: { prompts: [ex.prompt], model, source } });
    check(r.results.length === 1, `${r.results.length} results`);
    const af = r.results[0].activeFeatures;
    check(af && typeof af === 'object', 'no activeFeatures');
    check(JSON.stringify(r.results[0].tokens) === JSON.stringify(ex.tokens), `tokens ${r.results[0].tokens}`);
    // The feature's non-zero activations, as [token position, value] pairs over those tokens.
    const got = af[String(ex.feature)];
    check(Array.isArray(got), `feature ${ex.feature} missing from activeFeatures`);
    const off = ex.tokens.length - ex.values.length;
    const want = ex.values.map((v, i) => [i + off, v]).filter(([, v]) => v > 0);
    check(got.length === want.length, `${got.length} entries, wanted ${want.length}`);
    // Values come rounded to 3 decimals, as upstream sends them.
    got.forEach(([p, v], i) => check(p === want[i][0] && Math.abs(v - want[i][1]) <= 5e-4 + 1e-9, `entry ${i}: [${p}, ${v}] wanted ${want[i]}`));
  },
  async utilSaeVector() {
    const r = await api.utilSaeVectorPost({ utilSaeVectorPostRequest: { model, source, index: ex.feature } });
    check(r.vector.length === ex.dIn, `${r.vector.length} dims, wanted ${ex.dIn}`);
    check(r.hookName === ex.hook, `hookName ${r.hookName}`);
  },
  async decoderCossim() {
    const r = await api.utilSaeTopkByDecoderCossimPost({ utilSaeTopkByDecoderCossimPostRequest: { model, source, numResults: 4, feature: { model, source, index: ex.feature } } });
    const top = r.topkDecoderCossimFeatures;
    check(top.length === 4, `${top.length} neighbours`);
    // Cosines recomputed here from the decoder rows util/sae-vector serves.
    const vec = async (index) => (await api.utilSaeVectorPost({ utilSaeVectorPostRequest: { model, source, index } })).vector;
    const v0 = await vec(ex.feature);
    const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    for (const [j, n] of top.entries()) {
      check(n.feature.model === model && n.feature.source === source, `neighbour ${j}: ${JSON.stringify(n.feature)}`);
      const v = await vec(n.feature.index);
      const cos = v.reduce((s, x, i) => s + x * v0[i], 0) / (norm(v) * norm(v0));
      check(Math.abs(n.cosineSimilarity - cos) <= 1e-4, `neighbour ${n.feature.index}: ${n.cosineSimilarity}, recomputed ${cos}`);
      if (j) check(top[j - 1].cosineSimilarity >= n.cosineSimilarity, 'not sorted by cosine');
    }
  },
  async steerCompletion() {
    const req = (strength, types) => ({ steerCompletionRequest: {
      prompt: ex.prompt, model, types, features: [{ model, source, index: ex.feature, strength }],
      steerMethod: 'SIMPLE_ADDITIVE', normalizeSteering: false, nCompletionTokens: 6, temperature: 0,
      strengthMultiplier: 1, freqPenalty: 0, seed: 16 } });
    const zero = await api.steerCompletionPost(req(0, ['STEERED', 'DEFAULT']));
    check(zero.outputs.length === 2 && zero.outputs[0].type === 'STEERED' && zero.outputs[1].type === 'DEFAULT', 'types/order');
    check(typeof zero.outputs[0].output === 'string' && zero.outputs[0].output.length > 0, 'empty output');
    check(zero.outputs[0].output === zero.outputs[1].output, 'strength 0 changed the output');
    const def = await api.steerCompletionPost(req(200, ['DEFAULT']));
    check(def.outputs.length === 1 && def.outputs[0].output === zero.outputs[1].output, 'DEFAULT alone differs');
  },
  async steerCompletionChat() {
    if (!ex.chatModel) throw new Error('no chat model in the expectations');
    const r = await api.steerCompletionChatPost({ steerCompletionChatPostRequest: {
      prompt: [{ role: 'user', content: 'Hello' }], model: ex.chatModel, types: ['STEERED', 'DEFAULT'],
      features: [{ model: ex.chatModel, source: ex.chatSource, index: 0, strength: 0 }], steerMethod: 'SIMPLE_ADDITIVE',
      normalizeSteering: false, nCompletionTokens: 4, temperature: 0, strengthMultiplier: 1, freqPenalty: 0, seed: 1,
      steerSpecialTokens: false } });
    check(r.outputs.length === 2 && r.outputs[0].raw === r.outputs[1].raw, 'strength 0 changed the chat output');
    check(r.outputs[0].raw.startsWith(r.input.raw), 'raw does not start with the rendered prompt');
    check(r.outputs[0].chatTemplate[0].content === 'Hello', 'chatTemplate lost the user turn');
  },
  async errors() {
    const bad = new np.DefaultApi(new np.Configuration({ basePath: `${base}/v1`, apiKey: 'wrong' }));
    let [st, body] = await status(bad.tokenizePost({ tokenizePostRequest: { model, text: 'x' } }));
    check(st === 401 && typeof body.error === 'string', `wrong secret: ${st} ${JSON.stringify(body)}`);
    [st, body] = await status(api.activationSinglePost({ activationSinglePostRequest: { prompt: 'x', model, source: 'no-such-sae', index: '0' } }));
    check(st === 404 && typeof body.error === 'string', `unknown source: ${st} ${JSON.stringify(body)}`);
  },
};

for (const name of ex.cases) {
  try {
    if (!cases[name]) throw new Error('no such case');
    await cases[name]();
    ok++;
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
console.log(`${ok} ok, ${failed} failed`);
process.exit(failed ? 1 : 0);
