//! Which tables a repair keeps, at which level, and which it salvages or sets aside.
//!
//! Tables hold no sequence numbers, so a read's precedence comes only from where a table
//! sits: level 0 newest number first, then level 1, 2, … (`version.rs`). File numbers alone
//! do not give that order: a compaction of level 1 into level 2 writes outputs numbered
//! above a level-0 table flushed before it, yet holding older data. So a table keeps the
//! level the manifest recorded whenever a readable manifest lists it, and only a table no
//! manifest lists is placed by its number at level 0, which is right for flushes (each holds
//! data newer than every table numbered below it) and a guess otherwise, reported as such.
//!
//! - A table the manifest lists, and that reads completely: kept at its recorded level.
//! - A table no manifest lists: when the manifest agrees with the WALs (recovery's checks
//!   pass), it is an unfinished flush or compaction whose data is still in the files it was
//!   made from (edits are durable before anything they replace is deleted), so it is set
//!   aside; when a durable edit deleted it, it is obsolete and set aside too; otherwise it
//!   is kept at level 0 (a guess).
//! - A damaged table is set aside. The entries of its readable blocks are salvaged into a
//!   new table at the same level when that keeps precedence: always at levels 1 and below
//!   (a subset of its key range, at its level), and at level 0 only if no kept level-0 table
//!   numbered above it overlaps those entries (the new table's number puts it above them).

use super::{Placement, RepairReport, SalvagedTable};
use crate::error::Result;
use crate::filenames::table_path;
use crate::manifest::{ManifestPrefix, TableMeta};
use crate::options::Options;
use crate::sstable::TableBuilder;
use crate::verify::scan_table;
use std::collections::BTreeMap;
use std::path::Path;
use strata_vfs::Vfs;

/// A table the repaired manifest will list.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) meta: TableMeta,
    pub(super) placement: Placement,
}

/// What became of the tables: those to list, and those to move into `lost/` (with why).
#[derive(Debug, Default)]
pub(super) struct TablePlan {
    pub(super) keep: BTreeMap<u64, Planned>,
    pub(super) set_aside: Vec<(u64, String)>,
    /// The largest sequence number an entry of a kept table carries.
    pub(super) largest_sequence: u64,
}

/// A damaged table that may be salvaged, in number order.
struct Damaged {
    number: u64,
    level: u32,
    placement: Placement,
    why: String,
}

/// Scans every table in `numbers` and decides its fate. `base` is the readable manifest (if
/// any); `consistent` says whether it passed recovery's checks together with the WALs.
/// Salvaged tables are written with numbers from `next_number`.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_tables(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    numbers: &[u64],
    base: Option<&ManifestPrefix>,
    consistent: bool,
    next_number: &mut u64,
    report: &mut RepairReport,
) -> Result<TablePlan> {
    let mut plan = TablePlan::default();
    let mut damaged = Vec::new();
    for &number in numbers {
        let listed = base.and_then(|base| base.state.tables.get(&number));
        let deleted = base.is_some_and(|base| base.deleted.contains(&number));
        let placement = match listed {
            Some(meta) => Some((meta.level, Placement::Recorded)),
            None if consistent => {
                let why = "no manifest edit lists it, and the manifest agrees with the WALs: an \
                           unfinished flush or compaction, whose data is still in its sources";
                plan.set_aside.push((number, why.into()));
                None
            }
            None if deleted => {
                let why = "a manifest edit deleted it: obsolete";
                plan.set_aside.push((number, why.into()));
                None
            }
            None => Some((0, Placement::Guessed)),
        };
        let Some((level, placement)) = placement else {
            continue;
        };
        let scan = scan_table(vfs, &table_path(dir, number), listed, false)?;
        match scan.meta(number, level).filter(|_| scan.is_intact()) {
            Some(meta) => {
                plan.largest_sequence = plan.largest_sequence.max(scan.largest_sequence);
                plan.keep.insert(number, Planned { meta, placement });
            }
            None => {
                let why = scan
                    .problems
                    .first()
                    .map_or_else(|| "damaged".to_string(), |problem| problem.to_string());
                damaged.push(Damaged {
                    number,
                    level,
                    placement,
                    why,
                });
            }
        }
    }
    // Salvaged tables are numbered from here on, in the order of the tables they replace.
    let first_new = *next_number;
    for table in damaged {
        let salvaged = salvage(vfs, dir, options, &table, &plan, first_new, next_number)?;
        let why = match salvaged {
            Some((meta, blocks_lost, largest_sequence)) => {
                plan.largest_sequence = plan.largest_sequence.max(largest_sequence);
                report.salvaged.push(SalvagedTable {
                    from: table.number,
                    into: meta.number,
                    level: meta.level,
                    entries: meta.entries,
                    blocks_lost,
                });
                let why = format!("{}; its readable blocks were salvaged", table.why);
                plan.keep.insert(
                    meta.number,
                    Planned {
                        meta,
                        placement: table.placement,
                    },
                );
                why
            }
            None => format!("{}; nothing salvaged", table.why),
        };
        plan.set_aside.push((table.number, why));
    }
    Ok(plan)
}

/// Writes the readable entries of a damaged table as a new table at its level, if that
/// keeps precedence; returns its record and the number of blocks lost.
fn salvage(
    vfs: &dyn Vfs,
    dir: &Path,
    options: &Options,
    table: &Damaged,
    plan: &TablePlan,
    first_new: u64,
    next_number: &mut u64,
) -> Result<Option<(TableMeta, usize, u64)>> {
    let scan = scan_table(vfs, &table_path(dir, table.number), None, true)?;
    let (Some(first), Some(last)) = (scan.readable.first(), scan.readable.last()) else {
        return Ok(None);
    };
    if table.level == 0 {
        let overlapped = plan.keep.values().any(|kept| {
            // Earlier salvaged tables replace older ones: they stay below this one.
            kept.meta.level == 0
                && kept.meta.number > table.number
                && kept.meta.number < first_new
                && kept.meta.smallest <= last.key
                && kept.meta.largest >= first.key
        });
        if overlapped {
            return Ok(None);
        }
    }
    let number = *next_number;
    *next_number += 1;
    let mut builder = TableBuilder::new(
        vfs.create(&table_path(dir, number))?,
        number,
        options.block_size,
        options.bloom_bits_for_level(0, 0),
        options.compression_for_level(table.level as usize),
    );
    for entry in &scan.readable {
        builder.add(&entry.key, entry.sequence, entry.value.as_deref())?;
    }
    let summary = builder.finish()?;
    let meta = TableMeta {
        number,
        level: table.level,
        file_size: summary.file_size,
        entries: summary.entries,
        smallest: summary.smallest,
        largest: summary.largest,
    };
    Ok(Some((meta, scan.bad_blocks, summary.largest_sequence)))
}

/// Levels 1 and below must be sorted runs of tables that do not overlap (reads find one
/// table per level by binary search). A kept table that would overlap one before it in its
/// level (only possible if the manifest's records were wrong) moves to level 0, guessed.
pub(super) fn demote_overlaps(plan: &mut TablePlan, warnings: &mut Vec<String>) {
    let mut deep: Vec<&TableMeta> = plan
        .keep
        .values()
        .map(|planned| &planned.meta)
        .filter(|meta| meta.level > 0)
        .collect();
    deep.sort_by(|a, b| (a.level, &a.smallest).cmp(&(b.level, &b.smallest)));
    let mut demoted = Vec::new();
    let mut reach: Option<(u32, &[u8])> = None;
    for meta in deep {
        match reach {
            Some((level, largest))
                if level == meta.level && meta.smallest.as_slice() <= largest =>
            {
                demoted.push((meta.number, meta.level));
            }
            _ => reach = Some((meta.level, &meta.largest)),
        }
    }
    for (number, level) in demoted {
        if let Some(planned) = plan.keep.get_mut(&number) {
            planned.meta.level = 0;
            planned.placement = Placement::Guessed;
        }
        warnings.push(format!(
            "table {number} overlaps another table of level {level}; moved to level 0"
        ));
    }
}

/// Warns of every guessed table that overlaps another kept table: which of them holds the
/// newer value of a key they share is a guess (the one placed above wins).
pub(super) fn warn_guesses(plan: &TablePlan, warnings: &mut Vec<String>) {
    for planned in plan.keep.values() {
        if planned.placement != Placement::Guessed {
            continue;
        }
        let meta = &planned.meta;
        let overlapping: Vec<String> = plan
            .keep
            .values()
            .filter(|other| other.meta.number != meta.number)
            .filter(|other| {
                other.meta.smallest <= meta.largest && other.meta.largest >= meta.smallest
            })
            .map(|other| other.meta.number.to_string())
            .collect();
        if !overlapping.is_empty() {
            warnings.push(format!(
                "table {} was placed at level 0 by its number (no manifest lists it); it \
                 overlaps tables {}: which holds the newer value of a shared key is a guess",
                meta.number,
                overlapping.join(", ")
            ));
        }
    }
}
