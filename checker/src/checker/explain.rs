//! Explanations: what a violation report says about the writes, keys and faults behind it.
//!
//! Kept apart from the verdicts (`checker.rs`) because none of it decides anything: it runs
//! only once a check has failed, to name the writes (by step, epoch, status and sync), the
//! origin of each value the engine returned, a key's recent history, and the injected faults
//! that came before. Each list is bounded, so a report stays readable on a large model.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use super::{entries, for_each_difference, value_hash, Checker, Difference, Status};
use crate::show::{printable, printable_opt};
use crate::{Mutation, Violation, ViolationKind};

/// How many of a key's writes in the epoch an explanation lists.
const MAX_KEY_HISTORY: usize = 10;
/// How many differing keys beyond the first a recovery explanation names.
const MAX_OTHER_KEYS: usize = 5;

impl Checker {
    /// Wraps an explanation into a violation, appending the remembered faults.
    pub(super) fn violation(
        &mut self,
        op_index: u64,
        kind: ViolationKind,
        mut explanation: String,
    ) -> Violation {
        self.stats.violations += 1;
        if self.faults.is_empty() {
            explanation.push_str("  recent faults: none injected\n");
        } else {
            let _ = writeln!(
                explanation,
                "  recent faults (last {}, oldest first):",
                self.faults.len()
            );
            for (op, text) in &self.faults {
                let _ = writeln!(explanation, "    step {op}: {text}");
            }
        }
        Violation {
            op_index,
            kind,
            explanation,
        }
    }

    /// "step 40 (epoch 1, write #5, Ok, sync)".
    pub(super) fn describe_write(&self, id: usize) -> String {
        let Some(meta) = self.metas.get(id) else {
            return format!("write {id} (unknown)");
        };
        let position = if id >= self.epoch_first && meta.status != Status::Rejected {
            let before = self.metas[self.epoch_first..id]
                .iter()
                .filter(|meta| meta.status != Status::Rejected)
                .count();
            format!(", write #{}", before + 1)
        } else {
            String::new()
        };
        format!(
            "step {} (epoch {}{position}, {}{})",
            meta.op_index,
            meta.epoch,
            meta.status.label(),
            if meta.sync { ", sync" } else { "" }
        )
    }

    /// Which write of the run (any epoch) left `value` in `key`, from the value index.
    pub(super) fn origin_of_value(&self, key: &[u8], value: Option<&[u8]>) -> String {
        let entries = self
            .value_index
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let wanted = value.map(value_hash);
        let mut rejected = None;
        for &(id, hash) in entries.iter().rev() {
            if hash != wanted {
                continue;
            }
            if self.metas[id].status == Status::Rejected {
                rejected.get_or_insert(id);
                continue;
            }
            let verb = if value.is_some() {
                "written"
            } else {
                "deleted"
            };
            return format!("{verb} by {}", self.describe_write(id));
        }
        if let Some(id) = rejected {
            let verb = if value.is_some() {
                "written"
            } else {
                "deleted"
            };
            return format!(
                "{verb} only by {}, which never took effect",
                self.describe_write(id)
            );
        }
        match (value, entries.last()) {
            (Some(_), _) => "NEVER WRITTEN to this key".to_owned(),
            (None, None) => "never written".to_owned(),
            (None, Some(&(id, _))) => {
                format!(
                    "no delete ever issued; last written by {}",
                    self.describe_write(id)
                )
            }
        }
    }

    /// Where the model's value of `key` comes from.
    pub(super) fn model_origin(&self, key: &[u8]) -> String {
        let touches = self.touches.get(key).map(Vec::as_slice).unwrap_or_default();
        for &local in touches.iter().rev() {
            if self.status(local) == Status::Ok {
                let verb = if self.effect(local, key).is_some() {
                    "written"
                } else {
                    "deleted"
                };
                return format!(
                    "{verb} by {}",
                    self.describe_write(self.epoch_first + local)
                );
            }
        }
        self.base_origin(key)
    }

    pub(super) fn base_origin(&self, key: &[u8]) -> String {
        let value = self.base.get(key).map(Vec::as_slice);
        format!(
            "as in the epoch's base state: {}",
            self.origin_of_value(key, value)
        )
    }

    /// The shared body of read, scan and point-read explanations.
    pub(super) fn key_report(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        answered: Option<&[u8]>,
        label: &str,
    ) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "  key: {}", printable(key));
        let _ = writeln!(
            text,
            "    expected: {} — {}",
            printable_opt(expected),
            self.model_origin(key)
        );
        let _ = writeln!(
            text,
            "    {label}: {} — {}",
            printable_opt(answered),
            self.origin_of_value(key, answered)
        );
        let doubtful = self.in_doubt_writes(key);
        if !doubtful.is_empty() {
            let _ = writeln!(
                text,
                "    also accepted (in-doubt writes after the key's last acknowledged write):"
            );
            for local in doubtful.into_iter().rev() {
                let _ = writeln!(
                    text,
                    "      {} from {}",
                    printable_opt(self.effect(local, key)),
                    self.describe_write(self.epoch_first + local)
                );
            }
        }
        text.push_str(&self.key_history(key));
        text
    }

    /// The epoch's writes of `key`, the last [`MAX_KEY_HISTORY`] of them.
    pub(super) fn key_history(&self, key: &[u8]) -> String {
        let touches = self.touches.get(key).map(Vec::as_slice).unwrap_or_default();
        let mut text = String::new();
        if touches.is_empty() {
            let _ = writeln!(text, "  writes of this key in epoch {}: none", self.epoch);
            return text;
        }
        let skipped = touches.len().saturating_sub(MAX_KEY_HISTORY);
        let _ = writeln!(
            text,
            "  writes of this key in epoch {} ({}{}):",
            self.epoch,
            touches.len(),
            if skipped > 0 {
                ", the last 10 shown"
            } else {
                ""
            }
        );
        for &local in &touches[skipped..] {
            let action = match self.effect(local, key) {
                Some(value) => format!("put {}", printable(value)),
                None => "delete".to_owned(),
            };
            let _ = writeln!(
                text,
                "    {action} by {}",
                self.describe_write(self.epoch_first + local)
            );
        }
        text
    }

    /// "put "k" = "v" (+2 more)".
    pub(super) fn summarize_batch(&self, local: usize) -> String {
        let batch = &self.batches[local];
        let Some(first) = batch.first() else {
            return "empty batch".to_owned();
        };
        let head = match first {
            Mutation::Put { key, value } => {
                format!("put {} = {}", printable(key), printable(value))
            }
            Mutation::Delete { key } => format!("delete {}", printable(key)),
        };
        if batch.len() > 1 {
            format!("{head} (+{} more)", batch.len() - 1)
        } else {
            head
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn explain_recovery(
        &self,
        op_index: u64,
        state: &BTreeMap<Vec<u8>, Vec<u8>>,
        order: &[usize],
        k_min: usize,
        best_k: usize,
        best_mismatch: usize,
        below: Option<usize>,
    ) -> String {
        let n = order.len();
        let mut text = String::new();
        let crash = self
            .crash_op
            .map_or_else(|| "no crash".to_owned(), |op| format!("crash at step {op}"));
        let _ = writeln!(
            text,
            "recovery at step {op_index} (epoch {}, {crash}) yielded a state that is not the state after any allowed prefix of the epoch's writes",
            self.epoch
        );
        let _ = writeln!(
            text,
            "  epoch {}: {n} writes in the history ({} rejected, not counted); base state {} keys, recovered state {} keys",
            self.epoch,
            self.batches.len() - n,
            self.base.len(),
            state.len()
        );
        let _ = write!(text, "  allowed prefixes: k in [{k_min}, {n}]; ");
        match (k_min, self.durable_op) {
            (0, _) => {
                let _ = writeln!(text, "no write of this epoch was acknowledged durable");
            }
            (_, durable_op) => {
                let durable = if k_min == 1 {
                    "write #1 is durable".to_owned()
                } else {
                    format!("writes #1..#{k_min} are durable")
                };
                let _ = writeln!(
                    text,
                    "{durable} (through {}); last durable ack at step {}",
                    self.describe_write(self.epoch_first + order[k_min - 1]),
                    durable_op.map_or_else(|| "?".to_owned(), |op| op.to_string())
                );
            }
        }
        if let Some(j) = below {
            let _ = writeln!(
                text,
                "  the recovered state equals prefix k={j} exactly, below k_min={k_min}: acknowledged-durable writes #{}..#{k_min} were lost",
                j + 1
            );
        }

        // Rebuild the closest candidate, remembering which write left each key.
        let mut expected: BTreeMap<&[u8], &[u8]> = entries(&self.base).collect();
        let mut writer: BTreeMap<&[u8], usize> = BTreeMap::new();
        for &local in &order[..best_k] {
            for mutation in &self.batches[local] {
                writer.insert(mutation.key(), local);
                match mutation.value() {
                    Some(value) => expected.insert(mutation.key(), value),
                    None => expected.remove(mutation.key()),
                };
            }
        }
        let mut differences: Vec<Difference<'_>> = Vec::new();
        let mut count = 0usize;
        let _: ControlFlow<()> = for_each_difference(
            expected.iter().map(|(key, value)| (*key, *value)),
            entries(state),
            |key, want, got| {
                count += 1;
                if differences.len() <= MAX_OTHER_KEYS {
                    differences.push((key, want, got));
                }
                ControlFlow::Continue(())
            },
        );
        debug_assert_eq!(count, best_mismatch);
        let cut = if best_k == 0 {
            "the base state".to_owned()
        } else {
            format!(
                "after {}",
                self.describe_write(self.epoch_first + order[best_k - 1])
            )
        };
        let _ = writeln!(
            text,
            "  closest allowed prefix: k={best_k} ({cut}), differing in {count} key(s)"
        );
        if let Some(&(key, want, got)) = differences.first() {
            let want_origin = match writer.get(key) {
                Some(&local) => {
                    let verb = if want.is_some() { "written" } else { "deleted" };
                    format!(
                        "{verb} by {}",
                        self.describe_write(self.epoch_first + local)
                    )
                }
                None => self.base_origin(key),
            };
            let _ = writeln!(text, "  first differing key: {}", printable(key));
            let _ = writeln!(
                text,
                "    expected (k={best_k}): {} — {want_origin}",
                printable_opt(want)
            );
            let _ = writeln!(
                text,
                "    recovered: {} — {}",
                printable_opt(got),
                self.origin_of_value(key, got)
            );
            if differences.len() > 1 {
                let _ = writeln!(text, "  other differing keys:");
                for &(key, want, got) in &differences[1..] {
                    let _ = writeln!(
                        text,
                        "    {}: expected {}, recovered {}",
                        printable(key),
                        printable_opt(want),
                        printable_opt(got)
                    );
                }
                let shown = differences.len();
                if count > shown {
                    let _ = writeln!(text, "    … and {} more", count - shown);
                }
            }
            text.push_str(&self.key_history(key));
        }
        if n > 0 {
            let _ = writeln!(text, "  writes around the cut (#position):");
            let first = best_k.saturating_sub(1).max(1);
            let last = (best_k + 2).min(n);
            for position in first..=last {
                let local = order[position - 1];
                let meta = &self.metas[self.epoch_first + local];
                let _ = writeln!(
                    text,
                    "    #{position}{} step {} [{}{}] {}",
                    if position == best_k {
                        " (last in prefix)"
                    } else {
                        ""
                    },
                    meta.op_index,
                    meta.status.label(),
                    if meta.sync { ", sync" } else { "" },
                    self.summarize_batch(local)
                );
            }
        }
        text
    }

    pub(super) fn explain_point_read(
        &self,
        op_index: u64,
        state: &BTreeMap<Vec<u8>, Vec<u8>>,
        key: &[u8],
        answer: Option<&[u8]>,
    ) -> String {
        let scanned = state.get(key).map(Vec::as_slice);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "point read get({}) after recovery at step {op_index} (epoch {}) disagrees with the recovered state (full scan)",
            printable(key),
            self.epoch
        );
        let _ = writeln!(
            text,
            "    scan: {} — {}",
            printable_opt(scanned),
            self.origin_of_value(key, scanned)
        );
        let _ = writeln!(
            text,
            "    get:  {} — {}",
            printable_opt(answer),
            self.origin_of_value(key, answer)
        );
        text.push_str(&self.key_history(key));
        text
    }
}
