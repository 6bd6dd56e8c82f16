//! `strata shrink`: makes a failing case smaller — fewer steps, fewer crash points, fewer
//! fault kinds, and for a concurrent case fewer clients and fewer preemptions — while it
//! still fails the same way (same violation kind).

use crate::case::{Case, Fault, Mode};
use crate::runner::run_case;
use crate::workload::plan;

/// How big a case is: executed steps + planned crash points + fault kinds on.
pub fn size(case: &Case) -> usize {
    let plan = plan(case);
    let steps = (0..case.ops).filter(|i| !case.skip.contains(i)).count();
    let crashes = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(i, step)| {
            step.crash_after.is_some() && !case.skip.contains(i) && !case.no_crash.contains(i)
        })
        .count();
    steps + crashes + case.faults.len()
}

fn fails_like(case: &Case, kind: &str) -> bool {
    run_case(case, false)
        .finding
        .is_some_and(|finding| finding.kind == kind)
}

/// Shrinks `case`, which must fail with a violation of `kind`; returns the smallest case
/// found and how many runs it took.
pub fn shrink(case: &Case, kind: &str) -> (Case, usize) {
    let mut best = case.clone();
    let mut runs = 0;
    let try_case = |candidate: &Case, runs: &mut usize| {
        *runs += 1;
        fails_like(candidate, kind)
    };

    // 1. The shortest prefix of steps that still fails (binary search; a shorter run is a
    //    prefix of a longer one, and ends with the same final crash).
    let (mut low, mut high) = (1usize, best.ops);
    while low < high {
        let mid = (low + high) / 2;
        let mut candidate = best.clone();
        candidate.ops = mid;
        candidate.skip.retain(|&i| i < mid);
        candidate.no_crash.retain(|&i| i < mid);
        if try_case(&candidate, &mut runs) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    if high < best.ops {
        best.ops = high;
        best.skip.retain(|&i| i < high);
        best.no_crash.retain(|&i| i < high);
    }

    // 2. Fault kinds that are not needed.
    for fault in Fault::ALL {
        if best.faults.contains(&fault) {
            let mut candidate = best.clone();
            candidate.faults.remove(&fault);
            if try_case(&candidate, &mut runs) {
                best = candidate;
            }
        }
    }

    // 3. Planned crash points that are not needed.
    let crash_steps: Vec<usize> = plan(&best)
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.crash_after.is_some())
        .map(|(i, _)| i)
        .collect();
    for i in crash_steps {
        if best.no_crash.contains(&i) || best.skip.contains(&i) {
            continue;
        }
        let mut candidate = best.clone();
        candidate.no_crash.insert(i);
        if try_case(&candidate, &mut runs) {
            best = candidate;
        }
    }

    // 4. Steps that are not needed: remove chunks, halving the chunk size (ddmin-style).
    let mut chunk = (best.ops / 2).max(1);
    loop {
        let mut start = 0;
        while start < best.ops {
            let live: Vec<usize> = (start..(start + chunk).min(best.ops))
                .filter(|i| !best.skip.contains(i))
                .collect();
            if !live.is_empty() {
                let mut candidate = best.clone();
                candidate.skip.extend(live.iter().copied());
                if try_case(&candidate, &mut runs) {
                    best = candidate;
                }
            }
            start += chunk;
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    if best.mode == Mode::Concurrent {
        shrink_concurrency(&mut best, &mut runs, &try_case);
    }
    (best, runs)
}

/// 5. The fewest clients that still fail; 6. preemptions that are not needed: chunks of the
///    scheduler's switching decisions turned into "keep running" (ddmin-style again).
fn shrink_concurrency(
    best: &mut Case,
    runs: &mut usize,
    try_case: &dyn Fn(&Case, &mut usize) -> bool,
) {
    for clients in 1..crate::case::MAX_CLIENTS {
        if best.clients.is_some_and(|current| current <= clients) {
            break;
        }
        let mut candidate = best.clone();
        candidate.clients = Some(clients);
        if try_case(&candidate, runs) {
            *best = candidate;
            break;
        }
    }
    let switches: Vec<u64> = run_case(best, true)
        .switch_decisions
        .into_iter()
        .filter(|decision| !best.no_switch.contains(decision))
        .collect();
    let mut chunk = (switches.len() / 2).max(1);
    while !switches.is_empty() {
        for part in switches.chunks(chunk) {
            let mut candidate = best.clone();
            candidate.no_switch.extend(part.iter().copied());
            if try_case(&candidate, runs) {
                *best = candidate;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
}
