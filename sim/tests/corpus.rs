//! Replays every case in `corpus/` and expects its recorded outcome, so a fixed bug stays
//! fixed (and an open one is noticed when it gets fixed).

#![allow(clippy::unwrap_used)]

use strata_sim::corpus::{CorpusEntry, Expected};
use strata_sim::runner::run_case;

#[test]
fn every_corpus_case_reproduces_its_recorded_outcome() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus/ exists")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus holds at least one case");
    for path in files {
        let entry = CorpusEntry::load(&path).unwrap_or_else(|error| panic!("{error}"));
        let report = run_case(&entry.case, false);
        match (&entry.expected, &report.finding) {
            (Expected::Pass, None) => {}
            (Expected::Violation(want), Some(got)) if want.kind == got.kind => {}
            (expected, got) => panic!(
                "{}: expected {expected:?}, got {got:?}\nnote: {}",
                path.display(),
                entry.note
            ),
        }
        // Where the entry records its trace hash, the run must be the same one: a toolchain
        // or dependency change that moves any decision of the simulation shows here.
        if let Some(build) = &entry.build {
            assert_eq!(
                format!("{:016x}", report.trace_hash),
                build.trace_hash,
                "{}: the trace differs from the one recorded by {} ({}); if the simulation was \
                 changed on purpose, re-record it with `strata replay FILE --save FILE`",
                path.display(),
                build.commit,
                build.version
            );
        }
    }
}
