//! The command line: bad arguments get a one-line error and exit 2, never a panic.

#![allow(clippy::unwrap_used)]

mod common;

use common::strata;
use std::process::Command;

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let corpus = tempfile::tempdir().unwrap();
    let missing = corpus.path().join("missing.json");
    let garbage = corpus.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    for args in [
        vec!["sweep", "--seeds", "10..5"],
        vec!["sweep", "--seeds", "abc"],
        vec!["sweep", "--seeds", "0..10", "--faults", "crash,meteor"],
        vec!["sweep", "--seeds", "0..10", "--shard", "4/4"],
        vec!["replay", missing.to_str().unwrap()],
        vec!["replay", garbage.to_str().unwrap()],
        vec!["shrink", missing.to_str().unwrap()],
        vec!["frobnicate"],
    ] {
        let (code, _, stderr) = strata(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?} printed no error");
    }
}

#[test]
fn a_small_sweep_reports_json_and_passes() {
    let corpus = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = strata(&[
        "sweep",
        "--seeds",
        "0..20",
        "--ops",
        "200",
        "--json",
        "--corpus",
        corpus.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for field in [
        "seeds",
        "ops",
        "crashes",
        "recoveries",
        "faults",
        "violations",
        "failing_seeds",
        "elapsed_s",
    ] {
        assert!(summary.get(field).is_some(), "missing {field}: {stdout}");
    }
    assert_eq!(summary["seeds"], 20);
    assert_eq!(summary["violations"], 0);
}

#[test]
fn db_command_puts_gets_scans_and_reports_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let (code, _, stderr) = strata(&["db", "--dir", db, "get", "k"]);
    assert_eq!(code, 2, "opening a missing database is an error: {stderr}");
    assert!(stderr.contains("no database in"), "{stderr}");
    assert_eq!(strata(&["db", "--dir", db, "put", "k", "v"]).0, 0);
    assert_eq!(strata(&["db", "--dir", db, "put", "k2", "v2"]).0, 0);
    let (code, stdout, _) = strata(&["db", "--dir", db, "get", "k"]);
    assert_eq!((code, stdout.trim()), (0, "v"));
    assert_eq!(strata(&["db", "--dir", db, "delete", "k"]).0, 0);
    assert_eq!(strata(&["db", "--dir", db, "get", "k"]).0, 1);
    let (code, stdout, _) = strata(&["db", "--dir", db, "scan"]);
    assert_eq!((code, stdout.trim()), (0, "k2\tv2"));
}

#[test]
fn inspect_dumps_files_and_reports_corruption_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_str = db.to_str().unwrap();
    for i in 0..5 {
        assert_eq!(
            strata(&["db", "--dir", db_str, "put", &format!("k{i}"), "v"]).0,
            0
        );
    }
    assert_eq!(strata(&["db", "--dir", db_str, "compact"]).0, 0);
    let mut names: Vec<String> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let path = db.join(name);
        let (code, stdout, stderr) = strata(&["inspect", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
    }
    let table = names.iter().find(|n| n.ends_with(".sst")).expect("a table");
    let path = db.join(table);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let (code, stdout, _) = strata(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("CORRUPT") && stdout.contains(table.as_str()),
        "{stdout}"
    );
    let (code, _, stderr) = strata(&["inspect", dir.path().join("nope.sst").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_database_another_process_has_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let vfs = std::sync::Arc::new(strata_vfs::RealFs::new()) as std::sync::Arc<dyn strata_vfs::Vfs>;
    let held = strata_engine::Db::open(vfs, &path, strata_engine::Options::default()).unwrap();
    let db = path.to_str().unwrap();
    let (code, _, stderr) = strata(&["db", "--dir", db, "put", "k", "v"]);
    assert_eq!(
        code, 3,
        "a database in use is a failure at run time (exit 3): {stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    held.put(
        "held",
        "by the writer",
        strata_engine::WriteOptions::default(),
    )
    .unwrap();
    // Reads open read-only: they take no lock, so they work beside the writer, and see its
    // acknowledged writes (here still only in its WAL).
    let (code, stdout, stderr) = strata(&["db", "--dir", db, "get", "held"]);
    assert_eq!((code, stdout.trim()), (0, "by the writer"), "{stderr}");
    let (code, stdout, _) = strata(&["db", "--dir", db, "scan", "--reverse"]);
    assert_eq!((code, stdout.trim()), (0, "held\tby the writer"));
    assert_eq!(strata(&["db", "--dir", db, "stats"]).0, 0);
    held.close().unwrap();
    assert_eq!(strata(&["db", "--dir", db, "put", "k", "v"]).0, 0);
    let (code, stdout, _) = strata(&["db", "--dir", db, "scan", "--reverse"]);
    assert_eq!((code, stdout.trim()), (0, "k\tv\nheld\tby the writer"));
}

#[test]
fn bench_never_clears_a_directory_that_is_not_an_idle_strata_database() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("thesis.tex"), b"years of work").unwrap();
    let bench = |dir: &std::path::Path| {
        strata(&[
            "bench",
            "--dir",
            dir.to_str().unwrap(),
            "--num",
            "100",
            "--workloads",
            "fillrandom",
        ])
    };
    let (code, _, stderr) = bench(&foreign);
    assert_ne!(code, 0);
    assert!(stderr.contains("refusing to clear"), "{stderr}");
    assert_eq!(
        std::fs::read(foreign.join("thesis.tex")).unwrap(),
        b"years of work"
    );

    let live = tmp.path().join("live");
    let vfs = std::sync::Arc::new(strata_vfs::RealFs::new()) as std::sync::Arc<dyn strata_vfs::Vfs>;
    let held = strata_engine::Db::open(vfs, &live, strata_engine::Options::default()).unwrap();
    held.put(b"k", b"v", strata_engine::WriteOptions::SYNC)
        .unwrap();
    let (code, _, stderr) = bench(&live);
    assert_ne!(code, 0);
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(held.get(b"k").unwrap(), Some(b"v".to_vec()));
    held.close().unwrap();
    assert!(
        live.join("CURRENT").exists(),
        "the open database was deleted"
    );
    // Idle, it is the bench's to replace.
    let (code, _, stderr) = bench(&live);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bench_counts_the_writes_each_commit_group_carried() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = |threads: &str| {
        let dir = tmp.path().join(format!("db-{threads}"));
        let (code, stdout, stderr) = strata(&[
            "bench",
            "--dir",
            dir.to_str().unwrap(),
            "--num",
            "400",
            "--threads",
            threads,
            "--workloads",
            "fillrandom,readrandom",
            "--json",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let reports: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .filter(|report: &serde_json::Value| report.get("workload").is_some())
            .collect();
        let stats = |workload: &str| {
            let report = reports
                .iter()
                .find(|report| report["workload"] == workload)
                .unwrap_or_else(|| panic!("no {workload} report in {stdout}"));
            (
                report["stats"]["commit_groups"].as_u64().unwrap(),
                report["stats"]["writes_per_commit_group"].as_f64().unwrap(),
            )
        };
        (stats("fillrandom"), stats("readrandom"))
    };
    // One writer: every write is a group of its own.
    let (fill, read) = bench("1");
    assert_eq!(fill, (400, 1.0));
    assert_eq!(read, (0, 0.0), "reads commit no group");
    // Four writers: a group carries one to four writes (each writer has one in flight), and
    // the figure is the workload's 400 writes over its groups, not another workload's count.
    let ((groups, per_group), _) = bench("4");
    assert!((100..=400).contains(&groups), "{groups} groups");
    assert!(
        (per_group * groups as f64 - 400.0).abs() < 1e-6,
        "{per_group} writes per group over {groups} groups"
    );
}

/// A database of a few tables and a WAL, written through the CLI.
fn small_database(db: &str) {
    for i in 0..5 {
        assert_eq!(
            strata(&["db", "--dir", db, "put", &format!("k{i}"), "v"]).0,
            0
        );
    }
    assert_eq!(strata(&["db", "--dir", db, "compact"]).0, 0);
    assert_eq!(strata(&["db", "--dir", db, "put", "k9", "v9"]).0, 0);
}

fn files_in(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn verify_exits_0_when_sound_1_on_corruption_and_2_on_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_str = db.to_str().unwrap();
    small_database(db_str);
    let (code, stdout, stderr) = strata(&["db", "--dir", db_str, "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("sound: 0 corruption"), "{stdout}");
    let (code, stdout, _) = strata(&["db", "--dir", db_str, "verify", "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["sound"], true);
    assert_eq!(report["problems"], serde_json::json!([]));

    let table = files_in(&db, ".sst").remove(0);
    let path = db.join(&table);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x08;
    std::fs::write(&path, bytes).unwrap();
    let before = std::fs::read_dir(&db).unwrap().count();
    let (code, stdout, _) = strata(&["db", "--dir", db_str, "verify"]);
    assert_eq!(code, 1, "{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("corruption: ") && first.contains(&table) && first.contains("offset 0"),
        "{stdout}"
    );
    let (code, stdout, _) = strata(&["db", "--dir", db_str, "verify", "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["corruptions"], 1, "{report}");
    assert_eq!(report["problems"][0]["offset"], 0, "{report}");
    assert_eq!(
        std::fs::read_dir(&db).unwrap().count(),
        before,
        "verify wrote"
    );

    let missing = dir.path().join("missing");
    let (code, _, stderr) = strata(&["db", "--dir", missing.to_str().unwrap(), "verify"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    let file = db.join("CURRENT");
    let (code, _, stderr) = strata(&["db", "--dir", file.to_str().unwrap(), "verify"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = strata(&["db", "--dir", empty.to_str().unwrap(), "verify"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds no Strata database"), "{stderr}");
}

#[test]
fn repair_prints_what_it_kept_and_set_aside_and_the_result_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_str = db.to_str().unwrap();
    small_database(db_str);
    let (_, expected, _) = strata(&["db", "--dir", db_str, "scan"]);
    std::fs::remove_file(db.join("CURRENT")).unwrap();
    assert_eq!(strata(&["db", "--dir", db_str, "scan"]).0, 2);
    let (code, stdout, stderr) = strata(&["db", "--dir", db_str, "repair"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for line in [
        "base: ",
        "nothing guessed",
        "kept ",
        "replayed ",
        "set aside ",
        "new manifest: ",
    ] {
        assert!(stdout.contains(line), "missing {line:?}: {stdout}");
    }
    assert!(stdout.contains("lost/MANIFEST-"), "{stdout}");
    let (code, scanned, _) = strata(&["db", "--dir", db_str, "scan"]);
    assert_eq!((code, scanned), (0, expected));
    assert_eq!(strata(&["db", "--dir", db_str, "verify"]).0, 0);

    // A damaged table goes to lost/ (with one data block, nothing is left to salvage).
    let table = files_in(&db, ".sst").remove(0);
    let path = db.join(&table);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(strata(&["db", "--dir", db_str, "verify"]).0, 1);
    let (code, stdout, stderr) = strata(&["db", "--dir", db_str, "repair"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("lost/{table}: ")), "{stdout}");
    assert!(stdout.contains("block checksum mismatch"), "{stdout}");
    assert!(db.join("lost").join(&table).exists());
    assert_eq!(strata(&["db", "--dir", db_str, "verify"]).0, 0);
    assert_eq!(strata(&["db", "--dir", db_str, "scan"]).0, 0);

    let missing = dir.path().join("missing");
    let (code, _, stderr) = strata(&["db", "--dir", missing.to_str().unwrap(), "repair"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

/// Output piped into a reader that stops early (`strata … | head -1`): the process ends
/// quietly with status 0, where `println!` used to panic on the broken pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // A trace of about 1.2 MB: far more than a pipe holds, so the writes meet the closed end.
    {
        let args = ["replay", "--seed", "3", "--ops", "400", "--trace"];
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone: every later write meets a closed pipe.
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// `--ops` is bounded with a clear error, not a panic in every seed.
#[test]
fn a_huge_ops_count_is_a_bad_argument() {
    let (code, _, stderr) = strata(&["sweep", "--seeds", "0..2", "--ops", "10000000000"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--ops takes 1 to 1000000"), "{stderr}");
}

/// A corpus file fixes its case: options that would change it are refused, not ignored.
#[test]
fn replay_of_a_file_refuses_case_options() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut entries: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    let file = entries[0].to_str().unwrap().to_string();
    for extra in [["--ops", "5"], ["--faults", "crash"]] {
        let (code, _, stderr) = strata(&["replay", &file, extra[0], extra[1]]);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains("apply only with --seed"), "{stderr}");
    }
}

/// The summaries' fault names work on the command line too.
#[test]
fn fault_names_from_the_summary_are_accepted() {
    let corpus = tempfile::tempdir().unwrap();
    let (code, _, stderr) = strata(&[
        "sweep",
        "--seeds",
        "0..4",
        "--ops",
        "100",
        "--faults",
        "crash,torn_write,sync_failure,bit_flip,file_loss",
        "--json",
        "--corpus",
        corpus.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// A seed range of 2^64 starts at once and stays small: the seeds are never collected.
#[test]
fn a_huge_seed_range_is_iterated_lazily() {
    use std::process::Stdio;
    let corpus = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "sweep",
            "--seeds",
            "0..18446744073709551615",
            "--ops",
            "1",
            "--json",
        ])
        .args(["--jobs", "1", "--corpus", corpus.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap();
    assert!(rss_kib < 256 * 1024, "resident {rss_kib} KiB after 1.5 s");
}

/// Exit 1 for corruption found by an ordinary command, 2 for a `--dir` that is a file.
#[test]
fn corruption_exits_1_and_a_file_as_dir_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = dir.to_str().unwrap();
    assert_eq!(strata(&["db", "--dir", db, "put", "k", "v"]).0, 0);
    let wal = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[12] ^= 0x40;
    std::fs::write(&wal, bytes).unwrap();
    let (code, _, stderr) = strata(&["db", "--dir", db, "get", "k"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("corruption") && stderr.contains(".log"),
        "{stderr}"
    );
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let (code, _, stderr) = strata(&["db", "--dir", file.to_str().unwrap(), "get", "k"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

/// Binary keys and values round-trip through `--hex`; without it, output escapes what is
/// not printable UTF-8 instead of printing it lossily; `scan --json` prints JSON lines.
#[test]
fn binary_keys_round_trip_through_hex() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = dir.to_str().unwrap();
    for (key, value) in [("00ff0a41", "ffee"), ("ff", "00"), ("41", "e282ac")] {
        assert_eq!(
            strata(&["db", "--dir", db, "--hex", "put", key, value]).0,
            0
        );
    }
    let (code, stdout, _) = strata(&["db", "--dir", db, "--hex", "get", "00ff0a41"]);
    assert_eq!((code, stdout.trim()), (0, "ffee"));
    let (_, stdout, _) = strata(&["db", "--dir", db, "--hex", "scan", "--json"]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["key"], "00ff0a41");
    assert_eq!(lines[2]["key"], "ff");
    assert_eq!(lines[2]["value"], "00");
    // Text output: UTF-8 as is ("€"), the rest escaped, nothing lost.
    let (_, stdout, _) = strata(&["db", "--dir", db, "scan"]);
    assert_eq!(stdout, "\\u{0}\\xff\\nA\t\\xff\\xee\nA\t€\n\\xff\t\\u{0}\n");
    let (code, _, stderr) = strata(&["db", "--dir", db, "--hex", "get", "abc"]);
    assert_eq!(code, 2, "{stderr}");
}

/// `--until-covered N` stops once the seeds, in order from the start of the range, reached
/// every coverage mark N times, and says at which seed, whatever the number of jobs; when
/// the range ends first it says so and exits 3.
#[test]
fn until_covered_stops_at_the_seed_that_completes_coverage() {
    let corpus = tempfile::tempdir().unwrap();
    let corpus = corpus.path().to_str().unwrap();
    // Concurrent seeds 429..=495 reach every mark (recovery_point_in_time is rare: seed
    // 495); the range's end is only the bound.
    let sweep = |jobs: &str, json: bool| {
        let mut args = vec!["sweep", "--seeds", "429..2000", "--until-covered", "1"];
        args.extend(["--jobs", jobs, "--corpus", corpus]);
        if json {
            args.push("--json");
        }
        strata(&args)
    };
    let (code, stdout, stderr) = sweep("2", true);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["stopped"], "covered", "{stdout}");
    assert_eq!(summary["until_covered"]["times"], 1);
    let seed = summary["until_covered"]["reached_at_seed"]
        .as_u64()
        .unwrap();
    // The seeds run are the range's first ones, through the covering seed (and those in
    // flight when it finished).
    let end = summary["seed_ranges"][0]["end"].as_u64().unwrap();
    assert!(seed < end && end < 2000, "{stdout}");
    assert_eq!(summary["seeds"].as_u64().unwrap(), end - 429);
    let marks = summary["marks"].as_array().unwrap();
    assert_eq!(marks.len(), strata_engine::Mark::ALL.len());
    assert!(
        marks.iter().all(|row| row["reached"].as_u64() >= Some(1)),
        "{stdout}"
    );

    let (code, stdout, stderr) = sweep("1", false);
    assert_eq!(code, 0, "{stderr}");
    let line = format!("coverage goal: every mark reached at least 1 time, at seed {seed}");
    assert!(stdout.contains(&line), "{stdout}");
    assert!(stdout.contains("stopped by the coverage goal"), "{stdout}");

    // Three seeds cannot reach every mark: the bound cuts the sweep.
    let (code, stdout, stderr) = strata(&[
        "sweep",
        "--seeds",
        "0..3",
        "--until-covered",
        "2",
        "--json",
        "--corpus",
        corpus,
    ]);
    assert_eq!(code, 3, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["stopped"], "range_done");
    assert_eq!(summary["seeds"], 3);
    assert!(
        summary["until_covered"]["reached_at_seed"].is_null(),
        "{stdout}"
    );
    assert!(
        stderr.contains("coverage goal was not met") && stderr.contains("recovery_point_in_time"),
        "{stderr}"
    );
    let (code, _, stderr) = strata(&["sweep", "--seeds", "0..3", "--until-covered", "0"]);
    assert_eq!(code, 2, "{stderr}");
}
