#!/usr/bin/env python3
"""check_chat.py [NPM_DIR]: cross-checks tests/data/chat/*.jsonl (rendered by gen_chat.mjs with
@huggingface/jinja) against Python Jinja2 set up as transformers' apply_chat_template sets it up
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, tojson with
ensure_ascii=False, raise_exception, tools/documents None). Prints each case where the two
disagree. With --write it records Python's result in such a line's "jinja2" field ({"expected"} or
{"error"}), which the C tests then follow: transformers renders with Python Jinja2.
Run after gen_chat.mjs: python3 tests/tok/check_chat.py --write [NPM_DIR]"""
import json, os, sys, glob
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import Extension, loopcontrols
from jinja2 import nodes
from jinja2.exceptions import TemplateError

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
args = [a for a in sys.argv[1:] if a != "--write"]
write = "--write" in sys.argv[1:]
npm = args[0] if args else os.path.join(root, "build", "npm")

class Generation(Extension):  # transformers' AssistantTracker, reduced to rendering the body
    tags = {"generation"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)
    def _render(self, caller):
        return caller()

def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    e.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    def raise_exception(msg):
        raise TemplateError(msg)
    e.globals["raise_exception"] = raise_exception
    return e

def tok(t):
    return t if t is None or isinstance(t, str) else t.get("content")

def render(src, bos, eos, messages, agp):
    kw = {}
    if bos is not None: kw["bos_token"] = bos
    if eos is not None: kw["eos_token"] = eos
    try:
        return {"expected": env().from_string(src).render(messages=messages, tools=None, documents=None, add_generation_prompt=agp, **kw)}
    except Exception as ex:  # syntax errors included
        return {"error": str(ex)}

def main():
    bad = 0
    data = os.path.join(root, "tests", "data", "chat")
    for path in sorted(glob.glob(os.path.join(data, "*.jsonl"))):
        name = os.path.basename(path)[:-6]
        cfg = None
        if name != "constructs":
            p = os.path.join(data, "templates", name, "tokenizer_config.json")
            if not os.path.exists(p): p = os.path.join(npm, name, "tokenizer_config.json")
            cfg = json.load(open(p))
        out = []
        for line in open(path):
            c = json.loads(line)
            c.pop("jinja2", None)
            out.append(c)
            if cfg: src, bos, eos = cfg["chat_template"], tok(cfg.get("bos_token")), tok(cfg.get("eos_token"))
            else: src, bos, eos = c["template"], "<s>", "</s>"
            py = render(src, bos, eos, c["messages"], c["add_generation_prompt"])
            js_ok, py_ok = "expected" in c, "expected" in py
            if js_ok != py_ok or (js_ok and c["expected"] != py["expected"]):
                bad += 1
                c["jinja2"] = py
                print(f"{name}/{c['case']} agp={c['add_generation_prompt']}: js={json.dumps(c.get('expected', 'ERR ' + str(c.get('error'))), ensure_ascii=False)[:300]}\n    py={json.dumps(py.get('expected', 'ERR ' + str(py.get('error'))), ensure_ascii=False)[:300]}")
        if write:
            with open(path, "w") as f:
                f.write("".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n" for c in out))
    print(bad, "disagreements")

if __name__ == "__main__":
    main()
