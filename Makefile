# saed: `make` builds build/saed (CPU) and, when nvcc is found, build/saed-cuda.so (the CUDA
# backend, loaded at run time). `make test` runs every test against a throwaway PostgreSQL.
# `make run` installs what is missing, starts a private PostgreSQL under var/ and serves the API.
# Options: GPU=0 (skip CUDA), SANITIZE=1 (ASan+UBSan build under build/asan), CUDA_ARCHS="80 90".

ifeq ($(origin CC),default)
CC := gcc
endif
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)
PKGS     := libmicrohttpd jansson libpq libcurl libuv openblas yaml-0.1 zlib
PKG_OK   := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# -ffp-contract=off: no fused multiply-adds behind the code's back, so the wide-vector clones
# of engine/dash_kernels.c round exactly as the baseline build does (same bytes on any x86-64).
CFLAGS   := -std=gnu11 -O2 -g -ffp-contract=off -Wall -Wextra -Werror -Wno-format-truncation -pthread -I. $(PKG_CFLAGS)
LDLIBS   := $(PKG_LIBS) -ldl -lm -pthread

ifeq ($(SANITIZE),1)
BUILD    := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD    := build
SANFLAGS :=
endif

# CUDA toolchain: PATH first, then the toolkit's usual home.
GPU        ?= 1
CUDA_ARCHS ?= 80 90
NVCC       := $(if $(filter 0,$(GPU)),,$(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc)))
CUDA_HOME  := $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)))
CUDA_LIB   := $(BUILD)/saed-cuda.so

LIB_SRCS := $(filter-out server/main.c,$(wildcard server/*.c handlers/*.c db/*.c gpu/*.c engine/*.c))
# The feature page's files (web/) are compiled in as C arrays (tools/gen_web.c), so the binary
# needs no web root: build/gen/web_assets.c is regenerated whenever a file in web/ changes.
WEB_FILES := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_assets.o
TEST_SRCS := $(filter-out tests/oas_selftest.c tests/gpu_parity%.c,$(wildcard tests/*.c))
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/obj/%.o)

TARGETS := $(BUILD)/saed $(BUILD)/mkgpt2 $(BUILD)/tests/saed-tests $(BUILD)/tests/oas-selftest $(BUILD)/tests/fuzz-safetensors \
           $(BUILD)/tests/gpu-parity $(if $(NVCC),$(CUDA_LIB))

.PHONY: all test run clean deps test-deps check-deps readme-config
all: check-deps $(TARGETS)

check-deps:
	@if [ "$(PKG_OK)" != yes ]; then \
	  echo "✗ required libraries missing (pkg-config: $(PKGS)); run scripts/deps.sh as root"; exit 1; fi
	@echo "✓ required libraries: $(PKGS)"
	@if [ -n "$(NVCC)" ]; then echo "✓ CUDA: $(NVCC) (archs $(CUDA_ARCHS)) -> $(CUDA_LIB)"; \
	 elif [ "$(GPU)" = 0 ]; then echo "✗ CUDA: disabled (GPU=0)"; \
	 else echo "✗ CUDA: nvcc not found (CPU-only build)"; fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/gen-web: tools/gen_web.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $@ $<
# The list itself is a prerequisite too, so that removing a file regenerates the table.
WEB_STAMP := $(BUILD)/gen/web-files
$(shell mkdir -p $(BUILD)/gen; echo '$(WEB_FILES)' | cmp -s - $(WEB_STAMP) || echo '$(WEB_FILES)' > $(WEB_STAMP))
$(BUILD)/gen/web_assets.c: $(BUILD)/gen/gen-web $(WEB_FILES) $(WEB_STAMP)
	$(BUILD)/gen/gen-web $(WEB_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

# Only main.c sees the version, so a new commit does not rebuild everything.
$(BUILD)/obj/server/main.o: CFLAGS += -DSAED_VERSION='"$(VERSION)"'
$(BUILD)/obj/server/main.o: $(wildcard .git/HEAD .git/index)

$(BUILD)/saed: $(BUILD)/obj/server/main.o $(LIB_OBJS)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/saed-tests: $(TEST_OBJS) $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# GPU parity (tests/gpu_parity.c): every backend op and the pipeline, CUDA against the CPU.
# Prints "skipped: <reason>" and exits 0 without a device; `make gpu-parity` passes --require.
GPU_PARITY_OBJS := $(BUILD)/obj/tests/gpu_parity.o $(BUILD)/obj/tests/gpu_parity_e2e.o \
                   $(BUILD)/obj/tests/gpu_parity_rotary.o $(BUILD)/obj/tests/gpu_parity_families.o
$(BUILD)/tests/gpu-parity: $(GPU_PARITY_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

SANITIZER := $(or $(shell command -v compute-sanitizer 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/compute-sanitizer),$(wildcard /usr/local/cuda/bin/compute-sanitizer))
.PHONY: gpu-parity gpu-parity-memcheck
gpu-parity: $(BUILD)/tests/gpu-parity $(if $(NVCC),$(CUDA_LIB))
	$(BUILD)/tests/gpu-parity --require
gpu-parity-memcheck: $(BUILD)/tests/gpu-parity $(if $(NVCC),$(CUDA_LIB))
	@test -n "$(SANITIZER)" || { echo "✗ compute-sanitizer not found (PATH, CUDA_HOME/bin)"; exit 1; }
	$(SANITIZER) --tool memcheck --error-exitcode 1 $(BUILD)/tests/gpu-parity --require --quick

$(BUILD)/tests/oas-selftest: $(BUILD)/obj/tests/oas_selftest.o $(BUILD)/obj/tests/oas.o
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Fuzzing the safetensors header parser. fuzz-replay: builds and runs a plain main() over the
# seed corpus (`all` builds it; tests/run.sh runs it). fuzz: the libFuzzer binary, which needs clang
# (apt-get install clang); run it as $(BUILD)/fuzz/fuzz-safetensors tests/fuzz/corpus/safetensors.
.PHONY: fuzz fuzz-replay
fuzz-replay: $(BUILD)/tests/fuzz-safetensors
	$(BUILD)/tests/fuzz-safetensors tests/fuzz/corpus/safetensors
$(BUILD)/obj/tests/fuzz/fuzz_safetensors.o: CFLAGS += -DFUZZ_REPLAY_MAIN
$(BUILD)/tests/fuzz-safetensors: $(BUILD)/obj/tests/fuzz/fuzz_safetensors.o $(BUILD)/obj/engine/safetensors.o
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)
fuzz:
	@command -v clang >/dev/null || { echo "✗ make fuzz needs clang: apt-get install clang"; exit 1; }
	@mkdir -p $(BUILD)/fuzz
	clang -std=gnu11 -O1 -g -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $(BUILD)/fuzz/fuzz-safetensors \
	  tests/fuzz/fuzz_safetensors.c engine/safetensors.c $(shell pkg-config --libs jansson 2>/dev/null) -lm

# The CUDA backend is its own shared object so that build/saed has no link-time dependency
# on libcudart/libcublas and runs on machines without them. One object per .cu file, so that
# editing one kernel file recompiles only that file (nvcc is slow); CUDA_ARCHS=90 while iterating.
CUDA_SRCS := $(wildcard gpu/*.cu)
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(BUILD)/obj/%.o)
NVFLAGS := -O2 -g -std=c++17 -I. -Xcompiler -fPIC,-Wall,-Werror,-Wno-format-truncation $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
           -gencode arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
# Objects remember the flags (archs) they were built with: changing CUDA_ARCHS rebuilds them.
CUDA_STAMP := $(BUILD)/obj/gpu/nvcc-flags
ifneq ($(NVCC),)
$(shell mkdir -p $(BUILD)/obj/gpu; echo '$(NVFLAGS)' | cmp -s - $(CUDA_STAMP) || echo '$(NVFLAGS)' > $(CUDA_STAMP))
endif
$(BUILD)/obj/gpu/%.o: gpu/%.cu $(CUDA_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@
$(CUDA_LIB): $(CUDA_OBJS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -shared -o $@ $(CUDA_OBJS) -L$(CUDA_HOME)/lib64 -lcublas -lcudart \
	  -Xlinker -rpath,$(CUDA_HOME)/lib64

# deps first (on a fresh machine pkg-config knows nothing yet), then a fresh make that sees them.
test: test-deps
	@$(MAKE) --no-print-directory all
	@bash tests/run.sh $(BUILD)

run: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/run.sh

deps:
	@bash scripts/deps.sh
# The test-only packages too (chromium for the feature page test).
test-deps:
	@bash scripts/deps.sh --test

readme-config: $(BUILD)/saed
	@$(BUILD)/saed config-docs

# Tokenizer: `make bench-tokenizer` prints encode speed; `make unicode-tables` regenerates the
# committed engine/unicode_tables.h from Debian's unicode-data (so building never needs it).
UCD_DIR ?= /usr/share/unicode
.PHONY: bench-tokenizer unicode-tables
bench-tokenizer: $(BUILD)/bench/tokenizer
	$(BUILD)/bench/tokenizer
$(BUILD)/bench/tokenizer: $(BUILD)/obj/bench/tokenizer.o $(BUILD)/obj/bench/common.o $(BUILD)/obj/engine/tokenizer.o $(BUILD)/obj/engine/tok_split.o $(BUILD)/obj/engine/unicode.o \
  $(patsubst %,$(BUILD)/obj/gpu/%.o,blas detgemm par cpu_kernels cpu_avx512)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)
unicode-tables:
	@mkdir -p $(BUILD)/gen
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $(BUILD)/gen/gen-unicode tools/gen_unicode.c
	$(BUILD)/gen/gen-unicode $(UCD_DIR) > $(BUILD)/gen/unicode_tables.h
	mv $(BUILD)/gen/unicode_tables.h engine/unicode_tables.h

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Tools and benchmarks (not part of `make test`): mkgpt2 writes random GPT-2 checkpoints;
# `make bench` prints the forward pass's throughput against the machine's sgemm rate.
$(BUILD)/mkgpt2: $(BUILD)/obj/tools/mkgpt2.o $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/forward: $(BUILD)/obj/bench/forward.o $(BUILD)/obj/bench/common.o $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/families: $(BUILD)/obj/bench/families.o $(BUILD)/obj/bench/common.o $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# `make bench` also runs the rotary families at TinyLlama's and gemma-2-2b's shapes (BF16,
# ~8 GB of scratch files); `make bench-8b` loads a Llama-3.1-8B-shaped model (16 GB on disk).
.PHONY: bench bench-8b
bench: $(BUILD)/bench/forward $(BUILD)/bench/families
	$(BUILD)/bench/forward
	$(BUILD)/bench/families
bench-8b: $(BUILD)/bench/families
	$(BUILD)/bench/families --quick --8b

# `make bench-dashboard`: dashboard generation (saed vs a C reference of SAEDashboard's
# algorithm), tokens/s, peak RSS and FLOP rate; ~11 min on 2 cores, --quick ~1 min (bench/dashboard.c).
$(BUILD)/bench/dashboard: $(BUILD)/obj/bench/dashboard.o $(BUILD)/obj/bench/common.o $(BUILD)/obj/bench/saedash_ref.o $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# `make bench-dashboard-cuda`: the same pipeline on the GPU at issue 8's size (24576 prompts x
# 128 tokens, 24576 features), against a cuBLAS GEMM rate measured in the same run.
.PHONY: bench-dashboard bench-dashboard-cuda
bench-dashboard: $(BUILD)/bench/dashboard
	$(BUILD)/bench/dashboard
bench-dashboard-cuda: $(BUILD)/bench/dashboard $(if $(NVCC),$(CUDA_LIB))
	$(BUILD)/bench/dashboard --device cuda

# `make bench-api`: GET /api/feature under wrk on loopback against a 4096-feature dashboard
# (bench/api.sh: private PostgreSQL, a real dashboard job, cold / warm / database-only runs).
$(BUILD)/bench/api-sae: $(BUILD)/obj/bench/api_sae.o $(BUILD)/obj/bench/common.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench-api
bench-api: $(BUILD)/saed $(BUILD)/bench/api-sae
	@BUILD=$(BUILD) bash bench/api.sh

# `make bench-steer`: greedy generation tokens/s with the KV cache on a random gpt2-small-shaped
# model, prompt 32 + 64 new tokens, unsteered and steered, with the ratio to sgemm (bench/steer.c).
$(BUILD)/bench/steer: $(BUILD)/obj/bench/steer.o $(BUILD)/obj/bench/common.o $(BUILD)/obj/tools/fixture.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench-steer
bench-steer: $(BUILD)/bench/steer
	$(BUILD)/bench/steer
