//! Helpers shared by the tests of `sim/tests/`: the fleet tests' summary comparison
//! (`fleet.rs`, `slurm.rs`), and running the `strata` binary (`cli.rs`, `explore.rs`).

#![allow(clippy::unwrap_used, dead_code)]

use serde_json::Value;

/// Runs the `strata` binary of this build: its exit code, stdout and stderr.
pub fn strata(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The fields that describe how a sweep was split or timed, not what its seeds did.
pub const NOT_COUNTS: [&str; 7] = [
    "shard_count",
    "shards",
    "seed_ranges",
    "elapsed_s",
    "seeds_per_s",
    "ops_per_s",
    "recoveries_per_s",
];

/// Asserts that every other field (every count, the failures, the build, the config,
/// the declared range, why it stopped) is identical.
pub fn assert_same_counts(got: &Value, want: &Value) {
    let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
    let keys: Vec<&String> = want.keys().collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), keys, "the same fields");
    let mut compared = 0;
    for key in keys {
        if NOT_COUNTS.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(got[key], want[key], "field {key}");
        compared += 1;
    }
    assert!(compared > 20, "compared only {compared} fields");
}
