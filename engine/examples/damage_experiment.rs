//! The random-damage experiment of issue 10: closed databases on the simulated disk, one
//! damaged file each (a bit flip, a garbage range, a truncation or a deletion, at random),
//! then an open, a read of every key and a full scan. Prints the outcomes per kind of file:
//! error naming a file / exactly the data written / wrong data / panic.
//!
//! `cargo run --release -p strata-engine --example damage_experiment -- [TRIALS]`

#[path = "../tests/common/damage_harness.rs"]
mod harness;

use harness::{build, damage, files, judge, DamageKind, Draw, Verdict};
use std::collections::BTreeMap;

fn main() {
    let trials: u64 = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(2400);
    // Silence the panic hook: a panic is counted (and must be 0), not printed per trial.
    std::panic::set_hook(Box::new(|_| {}));
    let kinds = [
        DamageKind::Flip,
        DamageKind::Garbage,
        DamageKind::Truncate,
        DamageKind::Delete,
    ];
    // file kind -> [error, correct, wrong, panic]
    let mut table: BTreeMap<&'static str, [u64; 4]> = BTreeMap::new();
    let mut examples = Vec::new();
    for trial in 0..trials {
        let mut draw = Draw::new(trial);
        let (fs, expected) = build(trial % 16);
        let candidates = files(&fs);
        let (file, file_kind, len) =
            candidates[draw.below(candidates.len() as u64) as usize].clone();
        let kind = kinds[draw.below(4) as usize];
        damage(&fs, &file, len, kind, &mut draw);
        let verdict = judge(&fs, &expected);
        let column = match &verdict {
            Verdict::ErrorNamingFile(_) => 0,
            Verdict::Correct => 1,
            Verdict::Wrong(_) => 2,
            Verdict::Panic(_) => 3,
        };
        table.entry(file_kind).or_default()[column] += 1;
        if column >= 2 && examples.len() < 10 {
            examples.push(format!("trial {trial}: {kind:?} of {file}: {verdict:?}"));
        }
    }
    println!("{trials} trials: outcome per kind of file damaged");
    println!("file      error-naming-file  correct-data  wrong-data  panic");
    let mut total = [0u64; 4];
    for (kind, counts) in &table {
        println!(
            "{kind:<9} {:>17}  {:>12}  {:>10}  {:>5}",
            counts[0], counts[1], counts[2], counts[3]
        );
        for (sum, count) in total.iter_mut().zip(counts) {
            *sum += count;
        }
    }
    println!(
        "{:<9} {:>17}  {:>12}  {:>10}  {:>5}",
        "all", total[0], total[1], total[2], total[3]
    );
    for example in examples {
        println!("{example}");
    }
    if total[2] + total[3] > 0 {
        std::process::exit(1);
    }
}
