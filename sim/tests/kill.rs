//! Kill tests: `strata stress` writes from four threads (background flushes and compactions
//! running all the while), with `sync = true` and, in a second test, `sync = false`, and is
//! SIGKILLed mid-run, again and again on one database. A process kill is not a power cut:
//! the engine hands every commit group to the OS before it acknowledges it, so an
//! acknowledged unsynced write survives a kill too. After every kill the database must open, and hold every acknowledged
//! write: each thread's keys show the state after its last acknowledged operation or one of
//! the (at most two) operations after it that the test could not see acknowledged — the
//! one in flight, and one whose acknowledgement line the kill cut off.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use strata_engine::Db;
use strata_sim::stress::{operation, stress_options, KEYS_PER_THREAD};
use strata_vfs::{RealFs, Vfs};

const THREADS: u32 = 4;

type Contents = BTreeMap<Vec<u8>, Vec<u8>>;

/// Thread `thread`'s keys after its operations `0..=last` (`None`: none yet).
fn state_after(prefix: &str, thread: u32, last: Option<u64>) -> Contents {
    let mut state = Contents::new();
    let Some(last) = last else { return state };
    for n in 0..=last {
        let (key, value) = operation(prefix, thread, n);
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
    state
}

fn thread_keys(contents: &Contents, prefix: &str, thread: u32) -> Contents {
    let start = format!("{prefix}/t{thread:02}/").into_bytes();
    contents
        .iter()
        .filter(|(key, _)| key.starts_with(&start))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn contents(dir: &Path) -> Contents {
    let vfs = Arc::new(RealFs::new()) as Arc<dyn Vfs>;
    let db = Db::open(vfs, dir, stress_options()).unwrap();
    let all = db.iter().unwrap().map(|entry| entry.unwrap()).collect();
    db.close().unwrap();
    all
}

/// `T N`: thread `T` acknowledged its operation `N`.
fn parse_ack(line: &str) -> (usize, u64) {
    let (thread, n) = line
        .split_once(' ')
        .expect("an acknowledgement line is `T N`");
    (thread.parse().unwrap(), n.parse().unwrap())
}

/// Runs `strata stress` until `acks` acknowledgements were read, kills it, and returns the
/// last acknowledged operation of each thread.
fn run_and_kill(dir: &Path, prefix: &str, acks: usize, extra: &[&str]) -> Vec<Option<u64>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["stress", "--dir", dir.to_str().unwrap(), "--prefix", prefix])
        .args(["--threads", &THREADS.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut last = vec![None; THREADS as usize];
    let mut seen = 0;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    while seen < acks {
        let Some(line) = lines.next() else {
            let output = child.wait_with_output().unwrap();
            panic!(
                "stress ended after {seen} acknowledgements: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let (thread, n) = parse_ack(&line.unwrap());
        assert_eq!(
            last[thread].map_or(0, |l| l + 1),
            n,
            "acknowledged out of order"
        );
        last[thread] = Some(n);
        seen += 1;
    }
    child.kill().unwrap();
    // Lines written before the kill may still be in the pipe: read them too.
    for line in lines {
        let (thread, n) = parse_ack(&line.unwrap());
        last[thread] = Some(n);
    }
    child.wait().unwrap();
    last
}

#[test]
fn every_acknowledged_write_survives_sigkill_with_background_work_running() {
    kill_repeatedly(&[], 6);
}

/// The default promise: unsynced acknowledged writes survive a kill as well (with
/// `--wal-buffer-size 65536`, the old default, this test fails: the writes buffered in the
/// process die with it).
#[test]
fn every_acknowledged_unsynced_write_survives_sigkill() {
    kill_repeatedly(&["--unsynced"], 4);
}

/// `runs` kills of `strata stress EXTRA` on one database, each checked.
fn kill_repeatedly(extra: &[&str], runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    // What earlier runs left, as found after their kill: it must not change.
    let mut settled = Contents::new();
    for run in 0..runs {
        let prefix = format!("run{run}");
        let acks = 1500 + 700 * run;
        let last = run_and_kill(&dir, &prefix, acks, extra);
        let all = contents(&dir);
        for thread in 0..THREADS {
            let found = thread_keys(&all, &prefix, thread);
            let acked = last[thread as usize];
            let candidates: Vec<Option<u64>> = (0..=2u64)
                .map(|extra| match acked {
                    Some(a) => Some(a + extra),
                    None => extra.checked_sub(1),
                })
                .collect();
            assert!(
                candidates
                    .iter()
                    .any(|&upto| state_after(&prefix, thread, upto) == found),
                "run {run} thread {thread}: last acknowledged operation {acked:?}, but the \
                 recovered keys match no state from it to two operations later ({} keys)",
                found.len()
            );
        }
        let earlier: Contents = all
            .iter()
            .filter(|(key, _)| !key.starts_with(prefix.as_bytes()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(earlier, settled, "run {run}: earlier runs' data changed");
        settled = all;
        assert!(settled.len() as u64 <= (run as u64 + 1) * u64::from(THREADS) * KEYS_PER_THREAD);
    }
}
