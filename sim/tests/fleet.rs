//! Sweeps on a fleet, through the real binary: shards from the flag and from the
//! environment (Kubernetes, Slurm), `report merge` on real shard outputs against the
//! single-process sweep of the same range, refusals (missing, duplicated, mismatched,
//! malformed), and continuous sweeps stopped by a time limit or a signal, whose summary
//! must count exactly the seeds it says it ran.

#![allow(clippy::unwrap_used)]

mod common;

use common::assert_same_counts;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variables `--shard env` reads: cleared for every run, so the tests' own
/// environment (a CI job inside Slurm, say) cannot leak in.
const SHARD_VARS: [&str; 6] = [
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
];

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args(args);
    for var in SHARD_VARS {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn strata_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = command(args, env).output().expect("run strata");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn strata(args: &[&str]) -> (i32, String, String) {
    strata_env(args, &[])
}

/// Runs a sweep with `--json` and writes its summary to `out`; returns the summary.
fn sweep_to(out: &Path, args: &[&str], env: &[(&str, &str)], want_code: i32) -> Value {
    let corpus = out.with_extension("corpus");
    let mut all = vec![
        "sweep",
        "--json",
        "--jobs",
        "2",
        "--corpus",
        corpus.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = strata_env(&all, env);
    assert_eq!(code, want_code, "{all:?}: {stderr}");
    std::fs::write(out, &stdout).unwrap();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{all:?}: {e}: {stdout}"))
}

#[test]
fn shard_summaries_merge_into_the_single_process_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = ["--seeds", "0..60", "--ops", "200"];
    let single = sweep_to(&d.join("single.json"), &base, &[], 0);
    // Four shards: two by the flag, one as pod 2 of a Kubernetes Indexed Job, one as the
    // last task of a Slurm array submitted as --array=5-8.
    let mut files = Vec::new();
    for (i, extra, env) in [
        (0, vec!["--shard", "0/4"], vec![]),
        (1, vec!["--shard", "1/4"], vec![]),
        (
            2,
            vec!["--shard", "env", "--shard-count", "4"],
            vec![("JOB_COMPLETION_INDEX", "2")],
        ),
        (
            3,
            vec!["--shard", "env"],
            vec![
                ("SLURM_ARRAY_TASK_ID", "8"),
                ("SLURM_ARRAY_TASK_MIN", "5"),
                ("SLURM_ARRAY_TASK_MAX", "8"),
                ("SLURM_ARRAY_TASK_STEP", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
        ),
    ] {
        let path = d.join(format!("shard-{i}.json"));
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let summary = sweep_to(&path, &args, &env, 0);
        assert_eq!(summary["shards"], serde_json::json!([i]), "{summary}");
        assert_eq!(summary["shard_count"], 4);
        assert!(summary["seeds"].as_u64().unwrap() >= 15, "{summary}");
        files.push(path.to_str().unwrap().to_string());
    }
    let out = d.join("merged.json");
    let mut args = vec!["report", "merge", "--json", "--out", out.to_str().unwrap()];
    // In any order.
    args.extend(files.iter().rev().map(String::as_str));
    let (code, stdout, stderr) = strata(&args);
    assert_eq!(code, 0, "{stderr}");
    let merged: Value = serde_json::from_str(stdout.trim()).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(merged, written, "--out writes what --json prints");
    assert_same_counts(&merged, &single);
    assert_eq!(merged["seeds"], 60);
    assert_eq!(merged["shards"], serde_json::json!([0, 1, 2, 3]));
    // The text form says the whole range ran.
    let mut text_args = vec!["report", "merge"];
    text_args.extend(files.iter().map(String::as_str));
    let (code, stdout, stderr) = strata(&text_args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0..60 (all 4 shards)"), "{stdout}");
}

#[test]
fn failures_are_united_and_the_merge_exits_1_like_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = [
        "--seeds",
        "0..16",
        "--ops",
        "300",
        "--liar",
        "wal-sync-noop",
    ];
    let single = sweep_to(&d.join("single.json"), &base, &[], 1);
    assert!(single["violations"].as_u64().unwrap() >= 2, "{single}");
    let mut files = Vec::new();
    for i in 0..2 {
        let path = d.join(format!("shard-{i}.json"));
        let shard = format!("{i}/2");
        let args: Vec<&str> = base.iter().copied().chain(["--shard", &shard]).collect();
        let summary = sweep_to(&path, &args, &[], 1);
        assert!(summary["violations"].as_u64().unwrap() >= 1, "{summary}");
        files.push(path.to_str().unwrap().to_string());
    }
    let (code, stdout, stderr) = strata(&["report", "merge", "--json", &files[0], &files[1]]);
    assert_eq!(code, 1, "violations found: {stderr}");
    let merged: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_same_counts(&merged, &single);
    let (code, stdout, _) = strata(&["report", "merge", &files[0], &files[1]]);
    assert_eq!(code, 1);
    let first = single["failures"][0]["seed"].as_u64().unwrap();
    assert!(stdout.contains(&format!("seed {first}: ")), "{stdout}");
}

#[test]
fn a_missing_duplicated_or_mismatched_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut files = Vec::new();
    for i in 0..3 {
        let path = d.join(format!("shard-{i}.json"));
        let shard = format!("{i}/3");
        sweep_to(
            &path,
            &["--seeds", "10..40", "--ops", "100", "--shard", &shard],
            &[],
            0,
        );
        files.push(path.to_str().unwrap().to_string());
    }
    let copy = d.join("copy-of-1.json");
    std::fs::copy(&files[1], &copy).unwrap();
    let other_ops = d.join("other-ops.json");
    sweep_to(
        &other_ops,
        &["--seeds", "10..40", "--ops", "101", "--shard", "2/3"],
        &[],
        0,
    );
    let other_range = d.join("other-range.json");
    sweep_to(
        &other_range,
        &["--seeds", "10..41", "--ops", "100", "--shard", "2/3"],
        &[],
        0,
    );
    let other_count = d.join("other-count.json");
    sweep_to(
        &other_count,
        &["--seeds", "10..40", "--ops", "100", "--shard", "2/4"],
        &[],
        0,
    );
    let garbage = d.join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    let not_summary = d.join("not-a-summary.json");
    std::fs::write(&not_summary, "{\"seeds\": 3}").unwrap();
    let truncated = d.join("truncated.json");
    let text = std::fs::read_to_string(&files[2]).unwrap();
    std::fs::write(&truncated, text.replace("\"stopped\":\"range_done\",", "")).unwrap();
    let lying = d.join("lying.json");
    let seeds = format!(
        "\"seeds\":{},",
        serde_json::from_str::<Value>(&text).unwrap()["seeds"]
    );
    std::fs::write(&lying, text.replace(&seeds, "\"seeds\":999,")).unwrap();
    let bad_digest = d.join("bad-digest.json");
    let digest = serde_json::from_str::<Value>(&text).unwrap()["trace_digest"].clone();
    let digest = format!("\"trace_digest\":{digest}");
    assert!(text.contains(&digest), "{text}");
    std::fs::write(
        &bad_digest,
        text.replace(&digest, "\"trace_digest\":\"xyz\""),
    )
    .unwrap();
    let missing = d.join("missing.json");
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let (f0, f1, f2) = (&files[0], &files[1], &files[2]);
    for (inputs, want) in [
        (vec![f0.clone(), f1.clone()], "no summary holds shard 2/3"),
        (vec![f0.clone(), f2.clone()], "no summary holds shard 1/3"),
        (
            vec![f0.clone(), f1.clone(), f2.clone(), f1.clone()],
            "both hold shard 1/3",
        ),
        (
            vec![f0.clone(), f1.clone(), f2.clone(), p(&copy)],
            "both hold shard 1/3",
        ),
        (
            vec![f0.clone(), f1.clone(), p(&other_ops)],
            "different configurations",
        ),
        (
            vec![f0.clone(), f1.clone(), p(&other_range)],
            "different seed ranges",
        ),
        (
            vec![f0.clone(), f1.clone(), p(&other_count)],
            "different numbers of shards",
        ),
        (
            vec![f0.clone(), p(&garbage)],
            "garbage.json is not a JSON sweep summary",
        ),
        (
            vec![f0.clone(), p(&not_summary)],
            "not-a-summary.json is not a strata sweep summary",
        ),
        (
            vec![f0.clone(), p(&truncated)],
            "truncated.json is not a valid strata sweep summary",
        ),
        (
            vec![f0.clone(), p(&lying)],
            "lying.json: it counts 999 seeds",
        ),
        (
            vec![f0.clone(), p(&bad_digest)],
            "bad-digest.json has trace_digest \"xyz\", not 16 hex digits",
        ),
        (vec![f0.clone(), p(&missing)], "cannot read"),
    ] {
        let mut args = vec!["report", "merge"];
        args.extend(inputs.iter().map(String::as_str));
        let (code, stdout, stderr) = strata(&args);
        assert_eq!(code, 2, "{inputs:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{inputs:?}: want {want:?} in {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    // And the complete set merges.
    let (code, _, stderr) = strata(&["report", "merge", f2, f0, f1]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_shard_from_the_environment_is_checked_and_the_flag_wins() {
    let slurm = |id: &'static str| {
        vec![
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]
    };
    let base = [
        "sweep", "--seeds", "0..9", "--ops", "50", "--json", "--corpus",
    ];
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().to_str().unwrap();
    let shard_of = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args: Vec<&str> = base.to_vec();
        args.push(corpus);
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = strata_env(&args, env);
        assert_eq!(code, 0, "{extra:?} {env:?}: {stderr}");
        let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
        (
            summary["shards"][0].as_u64().unwrap(),
            summary["shard_count"].as_u64().unwrap(),
        )
    };
    assert_eq!(shard_of(&["--shard", "env"], &slurm("6")), (1, 3));
    assert_eq!(
        shard_of(
            &["--shard", "env", "--shard-count", "3"],
            &[("JOB_COMPLETION_INDEX", "2")]
        ),
        (2, 3)
    );
    // An explicit shard wins over the environment; no --shard ignores it.
    assert_eq!(shard_of(&["--shard", "0/3"], &slurm("6")), (0, 3));
    assert_eq!(shard_of(&[], &[("JOB_COMPLETION_INDEX", "2")]), (0, 1));
    let mut both = slurm("6");
    both.push(("JOB_COMPLETION_INDEX", "1"));
    for (extra, env, want) in [
        (
            vec!["--shard", "env"],
            vec![],
            "neither JOB_COMPLETION_INDEX",
        ),
        (
            vec!["--shard", "env"],
            vec![("JOB_COMPLETION_INDEX", "1")],
            "needs --shard-count",
        ),
        (
            vec!["--shard", "env", "--shard-count", "2"],
            vec![("JOB_COMPLETION_INDEX", "two")],
            "JOB_COMPLETION_INDEX=\"two\" is not a whole number",
        ),
        (
            vec!["--shard", "env", "--shard-count", "3"],
            both,
            "ambiguous",
        ),
        (
            vec!["--shard", "env"],
            slurm("9"),
            "not one of the array's ids",
        ),
        (
            vec!["--shard", "env", "--shard-count", "4"],
            slurm("6"),
            "conflicts with",
        ),
        (
            vec!["--shard-count", "4"],
            vec![],
            "--shard-count goes with --shard env",
        ),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.push(corpus);
        args.extend_from_slice(&extra);
        let (code, _, stderr) = strata_env(&args, &env);
        assert_eq!(code, 2, "{extra:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{extra:?} {env:?}: want {want:?} in {stderr}"
        );
    }
}

#[test]
fn continuous_sweep_arguments_are_checked() {
    for (args, want) in [
        (vec!["sweep"], "needs --seeds"),
        (
            vec!["sweep", "--seeds", "5.."],
            "needs --duration or --forever",
        ),
        (vec!["sweep", "--duration", "10"], "--duration takes a time"),
        (vec!["sweep", "--duration", "0s"], "--duration takes a time"),
        (
            vec!["sweep", "--duration", "1s", "--forever"],
            "cannot be used with",
        ),
        (
            vec!["sweep", "--forever", "--seeds", "x.."],
            "is not a number",
        ),
    ] {
        let (code, _, stderr) = strata(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
}

/// Reruns the seeds a continuous sweep says it ran, as a fixed-range sweep: every count
/// must be the same (so the summary counted exactly the seeds it names).
fn assert_rerun_matches(dir: &Path, summary: &Value) {
    let ranges = summary["seed_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{summary}");
    let (start, end) = (
        ranges[0]["start"].as_u64().unwrap(),
        ranges[0]["end"].as_u64().unwrap(),
    );
    assert!(end > start, "no seed ran: {summary}");
    let seeds = format!("{start}..{end}");
    let shard = format!("{}/{}", ranges[0]["shard"], summary["shard_count"]);
    let rerun = sweep_to(
        &dir.join("rerun.json"),
        &["--seeds", &seeds, "--shard", &shard, "--ops", "200"],
        &[],
        0,
    );
    assert_eq!(rerun["stopped"], "range_done");
    let mut summary = summary.clone();
    // The rerun's declared range is what the continuous one ran, and it finished.
    summary["range"] = rerun["range"].clone();
    summary["stopped"] = rerun["stopped"].clone();
    assert_same_counts(&summary, &rerun);
    assert_eq!(summary["seed_ranges"], rerun["seed_ranges"]);
}

#[test]
fn a_timed_sweep_counts_exactly_the_seeds_it_finished() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let summary = sweep_to(
        &dir.path().join("timed.json"),
        &["--duration", "2s", "--shard", "1/3", "--ops", "200"],
        &[],
        0,
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(60),
        "{took:?}"
    );
    assert_eq!(summary["stopped"], "time_limit", "{summary}");
    // The documented default start, open-ended.
    assert_eq!(
        summary["range"],
        serde_json::json!({"start": 1_000_000_000u64, "end": null})
    );
    assert_eq!(summary["seed_ranges"][0]["start"], 1_000_000_000u64);
    assert_rerun_matches(dir.path(), &summary);
}

#[test]
fn a_forever_sweep_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let child = command(
        &[
            "sweep",
            "--forever",
            "--seeds",
            "40..",
            "--ops",
            "200",
            "--jobs",
            "2",
            "--json",
            "--corpus",
            corpus.to_str().unwrap(),
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stopping after the seeds in flight"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["stopped"], "interrupted", "{summary}");
    assert_eq!(
        summary["range"],
        serde_json::json!({"start": 40, "end": null})
    );
    assert_rerun_matches(dir.path(), &summary);
}
