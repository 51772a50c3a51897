# The two commands of the README, and a few more. CMake does the real work; this file only
# sequences: install missing Debian packages, configure, build, run.
#   make demo      build and run the main example
#   make test      release build + ctest, the whole suite under ASan+UBSan, the whole suite
#                  under ThreadSanitizer, then each fuzzer for FUZZ_SECONDS
#   make bench     build and run every benchmark (bench_main_fashion_mnist: ours vs PyTorch)
#   make install PREFIX=/opt/deepseek
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
CTEST_ARGS ?=

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 10

.PHONY: all deps configure build test test-release test-asan test-tsan fuzz fuzz-smoke demo bench install clean

all: build

deps:
	@./scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDS_WERROR=ON $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: test-release test-asan test-tsan fuzz-smoke

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The CUDA objects are left out of the sanitizer build: they run only on a GPU, and the
# release build already compiles them.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_WERROR=ON \
	  -DDS_SANITIZE=address,undefined -DDS_WITH_CUDA=OFF -DDS_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -LE packaging $(CTEST_ARGS)

# libFuzzer targets (clang) for every parser of outside bytes: `make test` runs each for
# FUZZ_SECONDS on its seed corpus; `make fuzz` runs them longer. New inputs go to a scratch
# folder, never into the repository's corpus.
fuzz-smoke: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_WERROR=ON \
	  -DDS_BUILD_FUZZ=ON -DDS_SANITIZE=address,undefined -DDS_WITH_CUDA=OFF \
	  -DDS_BUILD_TESTS=OFF -DDS_BUILD_EXAMPLES=OFF -DDS_BUILD_BENCH=OFF -DDS_BUILD_TOOLS=OFF $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@set -e; for f in $(FUZZ_BUILD)/fuzz/fuzz_*; do \
	  name=$$(basename $$f); scratch=$$(mktemp -d); \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  seeds=fuzz/corpus/$${name#fuzz_}; [ -d $$seeds ] || seeds=; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $$scratch $$seeds \
	    > $(FUZZ_BUILD)/$$name.log 2>&1 || { tail -40 $(FUZZ_BUILD)/$$name.log; rm -rf $$scratch; exit 1; }; \
	  rm -rf $$scratch; \
	done; echo "fuzz: all targets ran clean"

fuzz:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=300

# The whole suite under ThreadSanitizer. Only third-party libraries that are not built with
# TSan are suppressed (tests/tsan.supp says why for each), never our code. The long tests
# (crash consistency) detect a sanitizer build and run a smaller size. The Fashion-MNIST demo
# test (label demo) runs too: ~35 s under TSan on an idle 2-core machine, 400 s timeout.
# Only the packaging tests are left out (they link the instrumented library into plain
# programs).
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_WERROR=ON \
	  -DDS_SANITIZE=thread -DDS_WITH_CUDA=OFF -DDS_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && \
	  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -LE packaging $(CTEST_ARGS)

# The main job: what the library sees on this machine, then training and serving a real model
# (checkpoints in $(BUILD)/demo-checkpoint; `--resume` continues an interrupted run).
demo: build
	$(BUILD)/examples/deepseek_info --samples 3 --trace $(BUILD)/deepseek_info.trace.json
	$(BUILD)/examples/train_fashion_mnist --checkpoint $(BUILD)/demo-checkpoint \
	  --trace $(BUILD)/train_fashion_mnist.trace.json --plot $(BUILD)/train_fashion_mnist.png

bench: build
	@set -e; for b in $(BUILD)/bench/bench_*; do [ -x "$$b" ] && DS_SHARED_DATA=$(CURDIR)/../shared/data "$$b"; done

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
