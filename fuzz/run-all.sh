#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 10 million), two at a time, and prints
# libFuzzer's closing line of each. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). New inputs that raise coverage land in corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
cargo +nightly fuzz build -O
mkdir -p logs
targets=$(cargo +nightly fuzz list)
printf '%s\n' $targets | xargs -P 2 -I{} sh -c \
  "cargo +nightly fuzz run -O {} -- -runs=$runs -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 > logs/{}.log 2>&1; echo \"{}: exit \$?: \$(grep -E '^Done|stat::number_of_executed_units' logs/{}.log | tr '\n' ' ')\""
