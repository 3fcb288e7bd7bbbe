// gen_cases.mjs [NPM_DIR]: renders the golden tokenizer cases with @huggingface/tokenizers (an
// independent JS implementation; saed never produces these) for the tokenizers that
// tests/tok/fetch.sh unpacks, writing tests/data/tokenizers/<name>.jsonl, one line per text:
//   {"text", "ids", "ids_special"}
// ids: the text as plain text (the tokenizer built with added_tokens emptied, so no added token
// is matched), no special tokens added; ids_special: HF's encode with added tokens matched,
// add_special_tokens false. Run: bash tests/tok/fetch.sh && node tests/tok/gen_cases.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const npm = path.resolve(process.argv[2] || path.join(root, "build/npm"));
const { Tokenizer } = await import(path.join(npm, "hftok/dist/tokenizers.mjs"));

const corpus = [
  "", "Hello world", "Hello, world!", " leading space", "trailing space ", "  two leading", "double  space",
  "many     spaces here", "tab\tseparated\tvalues", "line one\nline two", "para\n\nbreak", "crlf\r\nline",
  "ends with newline\n", "\n\nstarts with newlines", "   ", "\t", "\n",
  "12345678901234567890", "The year 2024 had 366 days.", "3.14159 and 1,000,000", "x=42;y=-7",
  "I'm sure you're right, we'll see, he'd've, it's", "DON'T SHOUT, I'M HERE", "I'M'S 'LL 'D 'Re 'vE",
  "café naïve résumé façade über Ærø", "Ünïcödé ÀÉÎÕÜ ßtraße", "日本語のテキスト、中文文本。", "한국어 텍스트",
  "emoji 😀🎉👍🏽 and ❤️", "mixed: abc123def ٣٤٥", "Привет, мир!", "Ελληνικά γράμματα",
  "rare chars: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ⅧⅨ ㈱ 𓀀", "ZWJ family 👨‍👩‍👧", "symbols ©®™ §¶ • … — –",
  "code: def f(x):\n    return x**2  # square", "{\"json\": [1, 2, 3], \"ok\": true}", "<html><body>hi</body></html>",
  "a<s>b</s>c", "<s> spaced </s>", "<|begin_of_text|>Hello<|end_of_text|>", "<|endoftext|>text<|im_start|>user\nhi<|im_end|>",
  "<bos>hello<eos>", "<start_of_turn>user\nhi<end_of_turn>", "<unk>", "<|im_start|>", "<mask> and [multimodal]",
  "▁already▁metaspace", "under_score snake_case CamelCase", "URL https://example.com/path?q=1&r=2#frag",
  "email someone@example.org", "!!!???...", "((( nested )))", "a", "ab", " a", "a ", "  \n  \t  x",
  "The quick brown fox jumps over the lazy dog. " + "repeated ".repeat(20),
  "—dash at start", "'quote' \"double\" `back`", "Numbers: ١٢٣ ४५६ 七八九", "Ǆ ǅ ǆ ﬁ ﬂ",
];

const names = ["llama2", "llama3", "qwen3", "gemma3"];
const outDir = path.join(root, "tests/data/tokenizers");
fs.mkdirSync(outDir, { recursive: true });
for (const name of names) {
  const dir = path.join(npm, name);
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = new Tokenizer(json, cfg);
  const plainJson = { ...json, added_tokens: [] };
  const plainCfg = { ...cfg, added_tokens_decoder: {} };
  const plain = new Tokenizer(plainJson, plainCfg);
  const lines = corpus.map((text) => {
    const ids = plain.encode(text, { add_special_tokens: false }).ids;
    const ids_special = tok.encode(text, { add_special_tokens: false }).ids;
    return JSON.stringify({ text, ids, ids_special });
  });
  fs.writeFileSync(path.join(outDir, name + ".jsonl"), lines.join("\n") + "\n");
  console.log(name, lines.length, "cases");
}
