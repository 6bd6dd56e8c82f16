//! The medium's faults in sweeps (`--faults misdirect,lost-write,stale-read,latent`): each
//! is injected, what the engine made of it is counted, and no run yields wrong data without
//! an error; the default set leaves them out, so its summaries carry no trace of them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use strata_sim::case::{Case, Fault, Mode};
use strata_sim::runner::fault_config;
use strata_sim::sweep::{sweep, Seeds, SweepConfig};

fn sweep_with(
    faults: &[Fault],
    seeds: std::ops::Range<u64>,
    mode: Mode,
) -> strata_sim::sweep::Summary {
    let mut config = SweepConfig::new(Seeds::all(seeds));
    config.faults = faults.iter().copied().collect::<BTreeSet<_>>();
    config.mode = mode;
    config.jobs = 2;
    let (summary, failures) = sweep(&config);
    let first = failures.first().and_then(|report| report.finding.clone());
    assert_eq!(
        summary.violations, 0,
        "{faults:?}: seeds {:?}; first: {first:?}",
        summary.failing_seeds
    );
    summary
}

#[test]
fn each_medium_fault_is_injected_and_the_engine_reports_it_or_it_does_no_harm() {
    let kinds: [(Fault, &[&str]); 4] = [
        (Fault::Misdirect, &["misdirected_write"]),
        (Fault::LostWrite, &["lost_write"]),
        (Fault::StaleRead, &["stale_read", "misdirected_read"]),
        (Fault::Latent, &["latent_sector_error"]),
    ];
    for (fault, injected_as) in kinds {
        let summary = sweep_with(&[Fault::Crash, fault], 0..100, Mode::Sequential);
        let outcome = summary
            .medium
            .get(fault.name())
            .unwrap_or_else(|| panic!("{fault} never fired: {summary:?}"));
        assert!(outcome.runs > 20, "{fault}: {outcome:?}");
        assert!(outcome.injected >= outcome.runs, "{fault}: {outcome:?}");
        assert_eq!(
            outcome.detected + outcome.recovered_past + outcome.accepted + outcome.violations,
            outcome.runs,
            "{fault}: every run counts once"
        );
        assert!(outcome.detected > 0, "{fault} never detected: {outcome:?}");
        let counted: u64 = injected_as
            .iter()
            .map(|kind| summary.faults.get(*kind).copied().unwrap_or(0))
            .sum();
        assert_eq!(counted, outcome.injected, "{fault}: {summary:?}");
        if matches!(fault, Fault::Misdirect | Fault::LostWrite) {
            // Most writes astray are harmless (a file compacted away, an unsynced tail lost
            // anyway) or lose only a tail the waiver allows.
            assert!(outcome.accepted > 0, "{fault}: {outcome:?}");
        }
    }
}

#[test]
fn the_medium_faults_together_with_every_other_kind_and_clients_find_no_violation() {
    let mut faults = Fault::DEFAULT.to_vec();
    faults.extend(Fault::MEDIUM);
    let summary = sweep_with(&faults, 0..40, Mode::Concurrent);
    assert!(!summary.medium.is_empty(), "{summary:?}");
}

#[test]
fn the_default_set_leaves_the_medium_faults_off_and_out_of_the_summary() {
    for seed in 0..50 {
        let config = fault_config(&Case::new(seed, 100, Fault::DEFAULT.into_iter().collect()));
        assert_eq!(
            (
                config.misdirected_write_rate,
                config.lost_write_rate,
                config.stale_read_rate,
                config.latent_sector_rate
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
    }
    let summary = sweep_with(&Fault::DEFAULT, 0..20, Mode::Sequential);
    assert!(summary.medium.is_empty());
    let json = serde_json::to_string(&summary).unwrap();
    for name in [
        "medium",
        "misdirected",
        "lost_write",
        "stale_read",
        "latent",
        "unreadable",
    ] {
        assert!(!json.contains(name), "{name} in {json}");
    }
}

#[test]
fn the_command_line_names_them_alone_by_group_and_by_their_summary_names() {
    let faults_of = |list: &str| -> Vec<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "sweep", "--seeds", "0..2", "--ops", "30", "--json", "--faults", list,
            ])
            .args([
                "--corpus",
                std::env::temp_dir()
                    .join("strata-medium-cli")
                    .to_str()
                    .unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{list}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        summary["config"]["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap().to_string())
            .collect()
    };
    let medium = ["misdirect", "lost_write", "stale_read", "latent"];
    assert_eq!(faults_of("medium"), medium);
    assert_eq!(
        faults_of("misdirected_write,lost-write,stale_read,latent_sector_error"),
        medium
    );
    assert_eq!(faults_of("all").len(), 8);
    let everything = faults_of("all,medium");
    assert_eq!(everything.len(), 12);
    assert!(everything.ends_with(&medium.map(String::from)));
}
