//! The corruption property (issue 10): for random damage to a random file of a closed
//! database, the outcome is an error naming a file, or exactly the data written. Never
//! wrong data, never a panic. `engine/examples/damage_experiment.rs` runs the same trials
//! in bulk and counts the outcomes per kind of file.

#![allow(clippy::unwrap_used)]

#[path = "common/damage_harness.rs"]
mod harness;

use harness::{build, damage, files, judge, DamageKind, Draw, Verdict};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = DamageKind> {
    prop_oneof![
        Just(DamageKind::Flip),
        Just(DamageKind::Garbage),
        Just(DamageKind::Truncate),
        Just(DamageKind::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn damage_to_any_file_is_an_error_naming_a_file_or_harmless(
        seed in 0u64..8,
        file_choice in any::<u64>(),
        kind in kind(),
        draw_seed in any::<u64>(),
    ) {
        let (fs, expected) = build(seed);
        let candidates = files(&fs);
        let (file, _, len) = &candidates[(file_choice % candidates.len() as u64) as usize];
        let mut draw = Draw::new(draw_seed);
        damage(&fs, file, *len, kind, &mut draw);
        let verdict = judge(&fs, &expected);
        prop_assert!(
            matches!(verdict, Verdict::ErrorNamingFile(_) | Verdict::Correct),
            "{kind:?} of {file}: {verdict:?}"
        );
    }
}

/// The property can fail: a database that lost a key without an error is caught.
#[test]
fn wrong_data_is_caught() {
    let (fs, mut expected) = build(1);
    expected.insert(b"key9999".to_vec(), b"never written".to_vec());
    assert!(matches!(judge(&fs, &expected), Verdict::Wrong(_)));
}
