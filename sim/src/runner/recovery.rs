//! The runner's crashes, restarts and reopens, and the check of what a recovery yields:
//! the machine loses power (`machine_crash`), the process dies (`restart`) or closes cleanly
//! (`reopen`); then `open_and_verify` opens the database through crashes during recovery
//! and transient faults, and asks the checker whether the recovered state is allowed.

use super::*;

impl Runner<'_> {
    /// A clean close and open; if the close fails, a process restart.
    pub(crate) fn reopen(&mut self, step: u64) -> Flow {
        self.settle_views(step)?;
        let db = self.db.take().expect("open database");
        self.count_engine_work(&db);
        let db = Arc::into_inner(db).expect("no client holds the database between phases");
        let result = db.close();
        self.release_held(step)?;
        self.hasher.write_u64(result.is_ok() as u64);
        match result {
            Ok(()) => self.checker.durable_point(step),
            Err(error) => self.engine_error(step, &error)?,
        }
        if self.fs.is_halted() {
            return self.machine_crash(step);
        }
        self.marks.process_ended();
        self.open_and_verify(step, true)
    }

    /// The process dies (no machine crash) and starts again.
    pub(crate) fn restart(&mut self, step: u64) -> Flow {
        self.settle_views(step)?;
        self.stats.restarts += 1;
        self.note(|| format!("step {step}: process restart (engine poisoned)"));
        self.retire_db();
        self.marks.process_ended();
        self.release_held(step)?;
        self.open_and_verify(step, true)
    }

    /// Power loss: the process dies, the filesystem keeps only what the crash model allows.
    pub(crate) fn machine_crash(&mut self, step: u64) -> Flow {
        self.settle_views(step)?;
        self.retire_db();
        self.release_held(step)?;
        self.crash_filesystem(step);
        // Sometimes the machine crashes again during recovery.
        if self.case.has(Fault::Crash) && self.fault_rng.chance(0.25) {
            let after = self.fault_rng.below(60);
            self.fs.set_crash_at(Some(self.fs.op_count() + after));
        }
        self.open_and_verify(step, true)
    }

    pub(super) fn crash_filesystem(&mut self, step: u64) {
        self.stats.crashes += 1;
        self.checker.crashed(step);
        let mark = self.marks.crashed();
        self.fs.set_crash_at(None);
        self.fs.crash();
        self.note(|| match mark {
            Some(mark) => format!("step {step}: CRASH (in the window of mark {mark})"),
            None => format!("step {step}: CRASH"),
        });
        self.medium_at_crash(step);
        self.damage_files(step);
    }

    /// Notes damage done to a file (`label`: the damage and the kind of file, `text`: what
    /// exactly), for the checker's explanations, the trace and the summary.
    pub(crate) fn record_damage(&mut self, step: u64, label: String, text: String) {
        self.damage_injected = true;
        *self
            .stats
            .damage_by_target
            .entry(label.clone())
            .or_default() += 1;
        if label.starts_with("flip") {
            self.bitflips += 1;
        }
        self.last_damage = Some(label);
        self.note(|| format!("step {step}: DAMAGE {text}"));
        self.checker.fault(step, text);
    }

    /// Faults that only make an operation fail are suspended while the runner itself
    /// reads the database to check it (crashes are off too).
    pub(super) fn quiet(&self) -> FaultConfig {
        FaultConfig {
            sync_failure_rate: 0.0,
            enospc_rate: 0.0,
            read_error_rate: 0.0,
            crash_at_op: None,
            ..self.config.clone()
        }
    }

    /// Opens the database (retrying through crashes during recovery and transient faults)
    /// and, if `verify`, checks the recovered state.
    pub(crate) fn open_and_verify(&mut self, step: u64, verify: bool) -> Flow {
        self.checkpoint(step);
        let mut transient_failures = 0;
        // Whether an attempt recovered past WAL damage (point in time); sticky across the
        // attempts, since a later one no longer sees what an earlier one dropped.
        let mut recovered_past = None;
        // A point-in-time recovery that crashed (or failed on an I/O error) after it
        // committed its result returns no report, and the next attempt finds the damage gone
        // (corpus/0005, 0007). Its durable note in `lost/` tells: a new note since the last
        // open means some attempt recovered past damage.
        self.medium_open_begins();
        let db = loop {
            let result = Db::open(Arc::clone(&self.vfs), DB_DIR, self.plan.options.clone());
            self.hasher.write_u64(result.is_ok() as u64);
            if let Ok(db) = &result {
                let report = db.recovery_report();
                if let Some(damage) = &report.wal_damage {
                    recovered_past = Some(damage.clone());
                }
                if report.damage_notes.len() > self.damage_notes_seen {
                    recovered_past.get_or_insert_with(|| {
                        format!(
                            "an interrupted attempt did, by its note {}",
                            report
                                .damage_notes
                                .last()
                                .map_or(String::new(), |note| { note.display().to_string() })
                        )
                    });
                }
                self.damage_notes_seen = report.damage_notes.len();
            }
            match result {
                // Best-effort steps (removing obsolete files) may hit the crash point
                // without failing the open: the machine is down all the same.
                Ok(db) if self.fs.is_halted() => {
                    self.count_engine_work(&db);
                    drop(db);
                    self.crash_filesystem(step);
                }
                Ok(db) => break db,
                Err(_) if self.fs.is_halted() => self.crash_filesystem(step),
                Err(Error::Io(error)) if self.unreadable_since_open() => {
                    self.note(|| {
                        format!("step {step}: open refused, a sector is unreadable: {error}")
                    });
                    return Err(Stop::DetectedCorruption);
                }
                Err(Error::Io(error)) => {
                    transient_failures += 1;
                    self.note(|| format!("step {step}: open failed: {error}"));
                    if transient_failures >= 5 {
                        // Keep the pending crash point, if any, but stop failing operations.
                        let crash_at = self.fs.config().crash_at_op;
                        self.fs.set_config(FaultConfig {
                            crash_at_op: crash_at,
                            ..self.quiet()
                        });
                    }
                    if transient_failures > 50 {
                        return Err(violation(
                            "recovery_stuck",
                            step,
                            format!("open keeps failing: {error}"),
                        ));
                    }
                }
                Err(error) => {
                    let text = error.to_string();
                    self.note(|| format!("step {step}: open failed: {text}"));
                    return match error {
                        Error::Corruption { .. } if self.damaged() => Err(Stop::DetectedCorruption),
                        _ => Err(violation(
                            "recovery_failed",
                            step,
                            format!("the database did not open after a crash: {text}"),
                        )),
                    };
                }
            }
        };
        if let Some(damage) = recovered_past {
            self.note(|| format!("step {step}: recovered past WAL damage: {damage}"));
            if !self.damaged() {
                return Err(violation(
                    "corruption_without_damage",
                    step,
                    format!("recovery reported WAL damage though none was injected: {damage}"),
                ));
            }
            if let Some(label) = self.last_damage.clone() {
                *self
                    .stats
                    .damage_recovered_past_by_target
                    .entry(label)
                    .or_default() += 1;
            }
            self.medium_recovered_past();
            self.checker.waive_durability();
        }
        self.db = Some(Arc::new(db));
        if !verify {
            self.fs.set_config(self.config.clone());
            return Ok(());
        }
        self.fs.set_config(self.quiet());
        let result = self.verify(step);
        self.fs.set_config(self.config.clone());
        result
    }

    /// Verification runs with every operation-failing fault off, so an I/O error here is
    /// the engine's own doing, unless a sector is unreadable (the medium's, reported).
    pub(super) fn verification_error(&mut self, step: u64, error: &Error) -> Flow {
        match error {
            Error::Io(_) if self.unreadable_since_open() => {
                self.note(|| format!("step {step}: reading the recovered database: {error}"));
                Err(Stop::DetectedCorruption)
            }
            Error::Io(_) | Error::Poisoned { .. } => Err(violation(
                "verification_failed",
                step,
                format!("reading the recovered database failed with no fault injected: {error}"),
            )),
            _ => self.engine_error(step, error),
        }
    }

    pub(super) fn verify(&mut self, step: u64) -> Flow {
        let scanned: Result<Entries, Error> = self.db().iter().and_then(|iter| iter.collect());
        let state: BTreeMap<Vec<u8>, Vec<u8>> = match scanned {
            Ok(entries) => entries.into_iter().collect(),
            Err(error) => return self.verification_error(step, &error),
        };
        let mut point_reads = Vec::new();
        for _ in 0..8 {
            let key =
                self.plan.keys[self.fault_rng.below(self.plan.keys.len() as u64) as usize].clone();
            match self.db().get(&key) {
                Ok(answer) => point_reads.push((key, answer)),
                Err(error) => return self.verification_error(step, &error),
            }
        }
        self.hasher.write_u64(state.len() as u64);
        self.medium_before_check(step);
        let verdict = self.checker.recovered(step, &state, &point_reads);
        self.medium_after_check(step, verdict.as_ref().ok().copied());
        let ok = verdict.is_ok();
        self.note(|| {
            format!(
                "step {step}: recovered {} keys -> {}",
                state.len(),
                if ok { "ok" } else { "VIOLATION" }
            )
        });
        match verdict {
            Ok(_) => {
                self.stats.recoveries += 1;
                self.marks.recovered();
                // What the checker knows after a recovery (its state is the new base):
                // the checkpoint for a crash after it (`strata explore`).
                self.checkpoint(step);
                Ok(())
            }
            Err(v) => Err(violation("recovery_not_a_prefix", step, v.to_string())),
        }
    }
}
