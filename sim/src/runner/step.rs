//! One planned step of a sequential run against the engine: a write, a read, a scan, a
//! flush or sync, maintenance, a reopen, or a view operation; its outcome goes to the
//! checker, and an engine error to `engine_error`.

use super::*;

impl Runner<'_> {
    pub(super) fn execute(&mut self, step: u64, op: &Op) -> Flow {
        match op {
            Op::Write { mutations, sync } => {
                let (batch, checked) = batch_of(mutations);
                let id = self.checker.write_issued(step, checked.clone(), *sync);
                self.checkpoint(step);
                self.instant += 1;
                let invoked = self.instant;
                let (sequence, result) = self
                    .db()
                    .write_sequenced(batch, WriteOptions { sync: *sync });
                self.instant += 1;
                let acknowledged = result.is_ok().then_some(self.instant);
                self.views
                    .write(step, 0, checked, invoked, acknowledged, sequence);
                self.hasher.write_u64(step);
                self.hasher.write_u64(result.is_ok() as u64);
                self.note(|| {
                    format!(
                        "step {step}: write {} ops sync={sync} -> {result:?}",
                        mutations.len()
                    )
                });
                match &result {
                    Ok(()) => self.checker.write_completed(id, Outcome::Ok),
                    // The engine says which errors mean "refused, no effect".
                    Err(error) if error.write_had_no_effect() => {
                        self.checker.write_completed(id, Outcome::Rejected)
                    }
                    Err(_) => self.checker.write_completed(id, Outcome::Failed),
                }
                if let Err(error) = result {
                    self.engine_error(step, &error)?;
                }
            }
            Op::Get(key) => {
                let result = self.db().get(key);
                self.hasher.write_u64(step);
                self.note(|| format!("step {step}: get {} -> {result:?}", printable(key)));
                match result {
                    Ok(answer) => {
                        self.hasher
                            .write_u64(answer.as_ref().map_or(u64::MAX, |v| v.len() as u64));
                        self.checker
                            .read(step, key, answer.as_deref())
                            .map_err(|v| violation("read_mismatch", step, v.to_string()))?;
                    }
                    Err(error) => self.engine_error(step, &error)?,
                }
            }
            Op::Scan(lower, upper) => {
                let bounds = scan_bounds(lower, upper);
                self.instant += 1;
                let invoked = self.instant;
                let iter = self.db().range(bounds.clone());
                self.instant += 1;
                let completed = self.instant;
                let jobs = self.db().jobs_finished();
                let result: Result<(u64, Entries), Error> = iter.and_then(|iter| {
                    let sequence = iter.sequence();
                    Ok((sequence, iter.collect::<Result<Entries, Error>>()?))
                });
                self.hasher.write_u64(step);
                self.note(|| {
                    format!(
                        "step {step}: scan -> {:?}",
                        result.as_ref().map(|(_, e)| e.len())
                    )
                });
                match result {
                    Ok((sequence, entries)) => {
                        self.hasher.write_u64(entries.len() as u64);
                        self.checker
                            .scan(step, lower.as_deref(), upper.as_deref(), &entries)
                            .map_err(|v| violation("scan_mismatch", step, v.to_string()))?;
                        let view = self.views.view(
                            step,
                            0,
                            strata_checker::ViewKind::Scan,
                            sequence,
                            invoked,
                            completed,
                            jobs,
                        );
                        let (lower, upper) = bounds;
                        self.views
                            .scan(view, step, 0, lower, upper, scan_steps(entries), jobs);
                    }
                    Err(error) => self.engine_error(step, &error)?,
                }
            }
            Op::Flush | Op::Sync => {
                let result = if matches!(op, Op::Flush) {
                    self.db().flush()
                } else {
                    self.db().sync()
                };
                self.hasher.write_u64(step);
                self.hasher.write_u64(result.is_ok() as u64);
                self.note(|| format!("step {step}: {op:?} -> {result:?}"));
                match result {
                    Ok(()) => self.checker.durable_point(step),
                    Err(error) => self.engine_error(step, &error)?,
                }
            }
            Op::Maintenance => {
                let result = self.db().maintenance();
                self.hasher.write_u64(step);
                self.note(|| format!("step {step}: maintenance -> {result:?}"));
                if let Err(error) = result {
                    self.engine_error(step, &error)?;
                }
            }
            Op::Reopen => {
                self.note(|| format!("step {step}: reopen"));
                self.reopen(step)?;
            }
            Op::TakeSnapshot
            | Op::SnapshotGet { .. }
            | Op::SnapshotScan { .. }
            | Op::ReleaseSnapshot { .. }
            | Op::Iterate(_) => self.execute_view_op(step, op)?,
        }
        Ok(())
    }
}
