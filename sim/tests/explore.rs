//! `strata explore` on fixed small workloads: the engine passes every crash state under the
//! classic and the harshest profile, a lying filesystem is caught, bounds say where they
//! cut, and the same exploration gives the same figures.

#![allow(clippy::unwrap_used)]

mod common;

use common::strata;
use std::collections::BTreeSet;
use strata_sim::case::{Case, Liar, Mode};
use strata_sim::explore::{explore, ExploreConfig, ExploreSummary};
use strata_vfs::sim::CaptureAt;
use strata_vfs::FsProfile;

fn config(seed: u64, ops: usize, profile: FsProfile) -> ExploreConfig {
    let mut case = Case::new(seed, ops, BTreeSet::new());
    case.mode = Mode::Sequential;
    case.fs_profile = profile;
    let mut config = ExploreConfig::new(case);
    config.profile = profile;
    config.max_states_per_point = 1500;
    config.jobs = 2;
    config
}

fn run(config: &ExploreConfig) -> ExploreSummary {
    explore(config).unwrap()
}

fn assert_clean(summary: &ExploreSummary) {
    assert_eq!(summary.run_verdict, "pass", "{}", summary.text());
    assert!(summary.violations.is_empty(), "{}", summary.text());
}

#[test]
fn every_crash_state_of_small_workloads_recovers_under_the_classic_and_posix_strict_profiles() {
    for profile in [FsProfile::Classic, FsProfile::PosixStrict] {
        for seed in [1, 2, 3] {
            let summary = run(&config(seed, 30, profile));
            assert_clean(&summary);
            assert!(summary.crash_points > 10, "{}", summary.text());
            assert!(summary.states_checked > 150, "{}", summary.text());
            assert_eq!(summary.states_checked, summary.distinct_states);
            // Every state's recovery wrote its manifest; torn WAL tails were recovered.
            assert_eq!(
                summary.recovery_marks.get("recovery_manifest_written"),
                Some(&summary.states_checked),
                "{:?}",
                summary.recovery_marks
            );
            assert!(summary
                .recovery_marks
                .contains_key("recovery_torn_wal_tail"));
        }
    }
}

#[test]
fn every_profile_passes_a_crash_before_every_disk_changing_operation() {
    for profile in FsProfile::ALL {
        let mut every_op = config(4, 20, profile);
        every_op.at = CaptureAt::EveryOperation;
        every_op.max_states_per_point = 300;
        let summary = run(&every_op);
        assert_clean(&summary);
        let at_syncs = run(&config(4, 20, profile));
        assert!(
            summary.crash_points > 2 * at_syncs.crash_points,
            "{profile}: {} points at every op, {} at syncs",
            summary.crash_points,
            at_syncs.crash_points
        );
    }
}

#[test]
fn a_filesystem_that_drops_wal_syncs_is_caught_with_the_image_described() {
    let mut lying = config(1, 30, FsProfile::Classic);
    lying.case.liar = Some(Liar::WalSyncNoop);
    let summary = run(&lying);
    assert!(!summary.violations.is_empty(), "{}", summary.text());
    let first = &summary.violations[0];
    assert!(!first.image.is_empty() && !first.explanation.is_empty());
    assert!(summary.failed());
    assert!(summary.text().contains("VIOLATION at crash point"));
}

#[test]
fn the_bounds_say_where_they_cut_and_the_figures_repeat() {
    let mut bounded = config(2, 30, FsProfile::PosixStrict);
    bounded.max_states = 120;
    bounded.max_states_per_point = 40;
    let first = run(&bounded);
    assert_eq!(first.states_checked, 120);
    assert!(first.crash_points_complete < first.crash_points);
    assert!(
        first.cut.iter().any(|cut| cut.contains("--max-states 120")),
        "{:?}",
        first.cut
    );
    assert!(first.text().contains("bound:"), "{}", first.text());
    let again = run(&bounded);
    assert_eq!(
        (
            again.states_enumerated,
            again.distinct_states,
            again.states_checked,
            &again.cut
        ),
        (
            first.states_enumerated,
            first.distinct_states,
            first.states_checked,
            &first.cut
        )
    );
    let unbounded = run(&config(2, 30, FsProfile::PosixStrict));
    assert!(unbounded.states_checked > first.states_checked);
}

#[test]
fn the_command_prints_json_and_refuses_bad_arguments_in_one_line() {
    let (code, stdout, stderr) = strata(&[
        "explore",
        "--seed",
        "5",
        "--ops",
        "12",
        "--fs-profile",
        "ext4-ordered",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["profile"], "ext4-ordered");
    assert!(summary["states_checked"].as_u64().unwrap() > 0);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let sequential = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/0008-block-read-skipped-the-newest-versions-at-a-restart-point.json");
    let (code, stdout, stderr) = strata(&["explore", "--corpus", sequential.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("violations 0"), "{stdout}");
    let mut entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sequential).unwrap()).unwrap();
    entry["case"]["mode"] = "concurrent".into();
    let concurrent = dir.path().join("concurrent.json");
    std::fs::write(&concurrent, entry.to_string()).unwrap();
    for args in [
        vec!["explore"],
        vec!["explore", "--seed", "1", "--fs-profile", "ext3"],
        vec!["explore", "--seed", "1", "--at", "sometimes"],
        vec!["explore", "--seed", "1", "--sector-size", "1000"],
        vec![
            "explore",
            "--seed",
            "1",
            "--sector-size",
            "8192",
            "--fs-profile",
            "posix-strict",
        ],
        vec!["explore", "--seed", "1", "--ops", "0"],
        vec!["explore", "--seed", "1", "--max-states", "0"],
        vec!["explore", "--corpus", missing.to_str().unwrap()],
        vec!["explore", "--corpus", concurrent.to_str().unwrap()],
    ] {
        let (code, _, stderr) = strata(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?} printed no error");
    }
}
