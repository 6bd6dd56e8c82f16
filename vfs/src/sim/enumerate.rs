//! Every crash image the persistence model allows, in process: the in-memory counterpart of
//! ALICE and CrashMonkey (OSDI'14, OSDI'18), which record a workload's system calls and
//! rebuild its crash states offline.
//!
//! A [`CrashPoint`] is a copy of the world taken just before an operation (every sync, or
//! every operation that changes the disk: [`CaptureAt`]). [`CrashPoint::states`] crashes
//! copies of it again and again, answering the crash's questions (`crash.rs`, `Decision`)
//! so that every sequence of answers is tried once. So the enumeration is exactly the
//! random crash's model, never a second copy of it that could drift: any subset of unsynced
//! sectors (a prefix with ordered writes), each directory's (or the journal's) prefix of
//! pending operations, truncations kept or undone.
//!
//! The order is a limited-discrepancy search of the decision tree (Harvey and Ginsberg,
//! IJCAI'95): first the image with every question answered "no" (the durable image), then
//! every image one answer away from it, then two, and so on, each once. Within a pass, a
//! run replays the answers of the last one, takes the next answer at the deepest question
//! that still has one within the pass's budget, and the first answer at every question
//! after it. Why not plain depth-first: a bound (`--max-states`) then cuts a tree whose
//! first questions (directories, the log) never varied and whose last file's sectors went
//! through every subset; in this order a cut leaves the states with the fewest deviations
//! from the durable image checked, across every question. The price: a pass replays the
//! states of the passes before it to find its questions. So [`Order::DepthFirst`] (each
//! state built once) is the better order when the whole tree is to be walked anyway, and
//! [`CrashPoint::count_states`] tells which case holds.
//!
//! Bounds, so that a state count stays finite and meaningful:
//! - At most [`EnumerationOptions::tears_per_file`] torn sectors per file per image (one
//!   by default: a power cut interrupts one write in flight per file, at the edge of what
//!   survives).
//! - A tear stops at a multiple of [`EnumerationOptions::tear_granularity`] (512 bytes by
//!   default, the smallest unit a drive writes atomically), followed by zeros, a fixed
//!   garbage pattern, or the old bytes: every torn variant at that granularity.
//! - Bit flips are not enumerated (their rate should be 0 here).

use super::crash::{Decide, Decision};
use super::{InodeId, Node, OpKind, SimFs, StableHasher, World};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// When the world is copied for enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureAt {
    /// Before every `sync` and `sync_dir`: where the most is pending.
    Syncs,
    /// Before every operation that changes the disk (writes, truncations, syncs, creates,
    /// renames, removes).
    EveryOperation,
}

impl CaptureAt {
    fn wants(self, op: OpKind) -> bool {
        match self {
            CaptureAt::Syncs => matches!(op, OpKind::Sync | OpKind::SyncDir),
            CaptureAt::EveryOperation => matches!(
                op,
                OpKind::Create
                    | OpKind::Append
                    | OpKind::Write
                    | OpKind::Sync
                    | OpKind::SetLen
                    | OpKind::Rename
                    | OpKind::Remove
                    | OpKind::CreateDir
                    | OpKind::SyncDir
            ),
        }
    }
}

/// The world just before one operation, to crash in every allowed way.
#[derive(Debug, Clone)]
pub struct CrashPoint {
    op_index: u64,
    op: OpKind,
    path: Arc<str>,
    world: Box<World>,
}

/// The order of an enumeration (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Depth first: each state built once.
    DepthFirst,
    /// The fewest answers away from the durable image first.
    FewestDeviationsFirst,
}

/// How the enumeration bounds tears, and its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumerationOptions {
    /// The order of the states.
    pub order: Order,
    /// A torn sector's new bytes stop at a multiple of this (a power of two).
    pub tear_granularity: u64,
    /// At most this many sectors of one file are torn in one image.
    pub tears_per_file: u32,
}

impl Default for EnumerationOptions {
    fn default() -> Self {
        EnumerationOptions {
            order: Order::DepthFirst,
            tear_granularity: 512,
            tears_per_file: 1,
        }
    }
}

/// One crash image: the filesystem after the crash, and the answers that built it.
#[derive(Debug)]
pub struct CrashState {
    /// The recovered machine's filesystem.
    pub fs: SimFs,
    /// A hash of every directory, name and byte of the image.
    pub image_hash: u64,
    /// The answers to the crash's questions, in order (for [`CrashPoint::describe`]).
    pub choices: Vec<u64>,
}

impl CrashPoint {
    /// The index of the operation the crash comes before.
    pub fn op_index(&self) -> u64 {
        self.op_index
    }

    /// That operation's kind.
    pub fn op(&self) -> OpKind {
        self.op
    }

    /// The path it names.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every crash image of this point, lazily.
    pub fn states(&self, options: EnumerationOptions) -> CrashStates<'_> {
        assert!(
            options.tear_granularity.is_power_of_two(),
            "tear granularity must be a power of two"
        );
        CrashStates {
            point: self,
            options,
            path: Vec::new(),
            budget: match options.order {
                Order::DepthFirst => u32::MAX,
                Order::FewestDeviationsFirst => 0,
            },
            found_in_pass: false,
            content_hashes: BTreeMap::new(),
            settled: BTreeMap::new(),
            finished: false,
        }
    }

    /// How many states there are, if no more than `limit` (depth first, building none).
    pub fn count_states(&self, options: EnumerationOptions, limit: u64) -> Option<u64> {
        let mut path = Vec::new();
        let mut count = 0;
        let mut settled = BTreeMap::new();
        loop {
            if count == limit {
                return None;
            }
            let mut world = (*self.world).clone();
            let mut replay = Replay::new(
                &self.world.inodes,
                &mut settled,
                &mut path,
                options,
                Run::Count,
            );
            world.crash_deciding(&mut replay);
            count += 1;
            if !advance(&mut path, u32::MAX) {
                return Some(count);
            }
        }
    }

    /// The image `choices` built, in words.
    pub fn describe(&self, choices: &[u64], options: EnumerationOptions) -> String {
        let mut path: Vec<Choice> = choices
            .iter()
            .map(|&taken| Choice {
                taken,
                count: u64::MAX,
            })
            .collect();
        let mut world = (*self.world).clone();
        let mut settled = BTreeMap::new();
        let mut replay = Replay::new(
            &self.world.inodes,
            &mut settled,
            &mut path,
            options,
            Run::Describe,
        );
        world.crash_deciding(&mut replay);
        let words = replay.words.unwrap_or_default();
        if words.is_empty() {
            "nothing unsynced: the durable image".to_string()
        } else {
            words.join("; ")
        }
    }
}

/// The crash images of a point, in the order of the decision tree's walk.
#[derive(Debug)]
pub struct CrashStates<'a> {
    point: &'a CrashPoint,
    options: EnumerationOptions,
    path: Vec<Choice>,
    /// The pass: how many answers differ from the first answer.
    budget: u32,
    /// Whether this pass has yielded a state (if not, no later pass will).
    found_in_pass: bool,
    /// The content hashes of the point's own files.
    content_hashes: BTreeMap<InodeId, u64>,
    /// Which of the point's own files are settled.
    settled: BTreeMap<InodeId, bool>,
    finished: bool,
}

impl Iterator for CrashStates<'_> {
    type Item = CrashState;

    fn next(&mut self) -> Option<CrashState> {
        while !self.finished {
            let mut world = (*self.point.world).clone();
            let mut replay = Replay::new(
                &self.point.world.inodes,
                &mut self.settled,
                &mut self.path,
                self.options,
                Run::Build,
            );
            world.crash_deciding(&mut replay);
            assert_eq!(
                replay.position,
                self.path.len(),
                "a replayed crash asked fewer questions than the run it replays"
            );
            let deviations = self.path.iter().filter(|choice| choice.taken > 0).count();
            let in_this_pass = self.budget == u32::MAX || deviations == self.budget as usize;
            self.found_in_pass |= in_this_pass;
            let choices = in_this_pass.then(|| self.path.iter().map(|c| c.taken).collect());
            if !advance(&mut self.path, self.budget) {
                if self.budget == u32::MAX || !self.found_in_pass {
                    self.finished = true;
                }
                self.budget = self.budget.saturating_add(1);
                self.found_in_pass = false;
                self.path.clear();
            }
            if let Some(choices) = choices {
                // A file the crash left as it was is still the point's own: hashed once.
                let point_inodes = &self.point.world.inodes;
                let cache = &mut self.content_hashes;
                let image_hash =
                    world_image_hash(&world, |id, inode| match point_inodes.get(&id) {
                        Some(original) if Arc::ptr_eq(original, inode) => {
                            *cache.entry(id).or_insert_with(|| file_content_hash(inode))
                        }
                        _ => file_content_hash(inode),
                    });
                return Some(CrashState {
                    fs: SimFs {
                        world: Arc::new(Mutex::new(world)),
                    },
                    image_hash,
                    choices,
                });
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Choice {
    taken: u64,
    count: u64,
}

/// Moves to the next path of the pass whose paths have at most `budget` answers other
/// than the first; false when there is none.
fn advance(path: &mut Vec<Choice>, budget: u32) -> bool {
    let mut deviations_before: Vec<u32> = Vec::with_capacity(path.len());
    let mut deviations = 0;
    for choice in path.iter() {
        deviations_before.push(deviations);
        deviations += u32::from(choice.taken > 0);
    }
    for index in (0..path.len()).rev() {
        let choice = path[index];
        if choice.taken + 1 < choice.count && deviations_before[index] < budget {
            path.truncate(index + 1);
            path[index].taken += 1;
            return true;
        }
    }
    false
}

/// Answers a crash's questions from a path, extending it with first answers.
struct Replay<'a> {
    /// The point's own files, and which of them are settled (`Decide::settled`).
    point_inodes: &'a BTreeMap<InodeId, Arc<super::Inode>>,
    settled: &'a mut BTreeMap<InodeId, bool>,
    path: &'a mut Vec<Choice>,
    position: usize,
    options: EnumerationOptions,
    /// The file of the last tear in this image, and how many of its sectors are torn.
    torn_in: (String, u32),
    /// When describing: the answers in words.
    words: Option<Vec<String>>,
    /// Counting: questions only, no bytes.
    dry: bool,
}

/// What a replayed crash is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Build the image.
    Build,
    /// Only ask the questions (counting states): no bytes.
    Count,
    /// Build it and say in words what each answer did.
    Describe,
}

impl<'a> Replay<'a> {
    fn new(
        point_inodes: &'a BTreeMap<InodeId, Arc<super::Inode>>,
        settled: &'a mut BTreeMap<InodeId, bool>,
        path: &'a mut Vec<Choice>,
        options: EnumerationOptions,
        run: Run,
    ) -> Replay<'a> {
        Replay {
            point_inodes,
            settled,
            path,
            position: 0,
            options,
            torn_in: (String::new(), 0),
            words: (run == Run::Describe).then(Vec::new),
            dry: run == Run::Count,
        }
    }
}

impl Replay<'_> {
    /// The answer to a question of `count` answers (`count > 1`).
    fn answer(&mut self, count: u64) -> u64 {
        let position = self.position;
        self.position += 1;
        match self.path.get_mut(position) {
            Some(choice) => {
                if choice.count == u64::MAX {
                    choice.count = count;
                }
                assert_eq!(
                    choice.count, count,
                    "a replayed crash asked a different question (the world is not a copy)"
                );
                choice.taken
            }
            None => {
                self.path.push(Choice { taken: 0, count });
                0
            }
        }
    }

    fn say(&mut self, words: impl FnOnce() -> String) {
        if let Some(said) = &mut self.words {
            said.push(words());
        }
    }
}

impl Decide for Replay<'_> {
    fn below(&mut self, count: u64, what: Decision<'_>) -> u64 {
        if let Decision::TearPoint { file, sector } = what {
            let granularity = self.options.tear_granularity;
            let points = count.div_ceil(granularity);
            let cut = if points > 1 { self.answer(points) } else { 0 } * granularity;
            self.say(|| format!("{file}: sector {sector}'s new bytes stop after {cut}"));
            return cut;
        }
        let answer = if count > 1 { self.answer(count) } else { 0 };
        match what {
            Decision::DirectoryPrefix { dir } if count > 1 => self.say(|| {
                format!(
                    "directory {:?}: {answer} of {} pending operations",
                    display_dir(dir),
                    count - 1
                )
            }),
            Decision::JournalPrefix if count > 1 => self.say(|| {
                format!(
                    "journal: {answer} of {} pending directory operations",
                    count - 1
                )
            }),
            Decision::OrderedPrefix { file } | Decision::AppendedPrefix { file } if count > 1 => {
                self.say(|| format!("{file}: first {answer} of {} dirty sectors", count - 1))
            }
            Decision::TearFill { file, sector } => self.say(|| {
                let fill = ["zeros", "garbage", "the old bytes"][answer.min(2) as usize];
                format!("{file}: sector {sector}'s tear followed by {fill}")
            }),
            _ => {}
        }
        answer
    }

    fn chance(&mut self, probability: f64, what: Decision<'_>) -> bool {
        if probability <= 0.0 {
            return false;
        }
        if probability >= 1.0 {
            return true;
        }
        match what {
            Decision::SectorTorn { file, .. }
                if self.torn_in.0 == file && self.torn_in.1 >= self.options.tears_per_file =>
            {
                return false;
            }
            // Bit flips are not crash states (the module documentation): never one.
            Decision::BitFlip => return false,
            // Either answer builds the same image: one is enough.
            Decision::SectorSurvives {
                unchanged: true, ..
            } => return false,
            _ => {}
        }
        let yes = self.answer(2) == 1;
        match what {
            Decision::SectorTorn { file, sector } if yes => {
                if self.torn_in.0 != file {
                    self.torn_in.0.clear();
                    self.torn_in.0.push_str(file);
                    self.torn_in.1 = 0;
                }
                self.torn_in.1 += 1;
                self.say(|| format!("{file}: sector {sector} torn"));
            }
            Decision::SectorSurvives { file, sector, .. } => self.say(|| {
                format!(
                    "{file}: sector {sector} {}",
                    if yes { "kept" } else { "lost" }
                )
            }),
            Decision::DirectoryOperation { dir, index } => self.say(|| {
                format!(
                    "directory {:?}: pending operation {index} {}",
                    display_dir(dir),
                    if yes { "kept" } else { "lost" }
                )
            }),
            Decision::Truncation { file } => {
                self.say(|| format!("{file}: truncation {}", if yes { "kept" } else { "undone" }))
            }
            Decision::SizeAheadOfData { file } if yes => {
                self.say(|| format!("{file}: size durable ahead of its data"))
            }
            _ => {}
        }
        yes
    }

    fn settled(&mut self, id: InodeId, inode: &Arc<super::Inode>) -> bool {
        match self.point_inodes.get(&id) {
            Some(original) if Arc::ptr_eq(original, inode) => *self
                .settled
                .entry(id)
                .or_insert_with(|| super::crash::is_settled(inode)),
            _ => super::crash::is_settled(inode),
        }
    }

    fn dry(&self) -> bool {
        self.dry
    }

    fn garbage(&mut self, buf: &mut [u8]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(151).wrapping_add(0x5b);
        }
    }
}

fn display_dir(dir: &str) -> &str {
    if dir.is_empty() {
        "/"
    } else {
        dir
    }
}

/// A hash of the visible image: every directory, name and byte ([`SimFs::image_hash`]).
/// `content_hash` hashes one file's bytes (a cache may answer for files it has seen).
pub(super) fn world_image_hash(
    world: &World,
    mut content_hash: impl FnMut(InodeId, &Arc<super::Inode>) -> u64,
) -> u64 {
    let mut hasher = StableHasher::default();
    for dir in world.dirs.keys() {
        hasher.write(b"d");
        hasher.write(dir.as_bytes());
    }
    let mut files: Vec<(String, InodeId)> = Vec::new();
    for (dir_name, dir) in &world.dirs {
        for (name, node) in &dir.visible {
            if let Node::File(id) = node {
                files.push((super::join(dir_name, name), *id));
            }
        }
    }
    files.sort();
    for (path, id) in files {
        hasher.write(b"f");
        hasher.write(path.as_bytes());
        match world.inodes.get(&id) {
            Some(inode) => {
                hasher.write_u64(inode.visible.len() as u64);
                hasher.write_u64(content_hash(id, inode));
            }
            None => hasher.write_u64(0),
        }
    }
    hasher.finish()
}

/// One file's bytes, hashed (XXH3: the images are hashed per state, at memory speed).
pub(super) fn file_content_hash(inode: &super::Inode) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&inode.visible)
}

impl World {
    /// Before operation `index`: copies the world if captures of this kind are on.
    pub(super) fn maybe_capture(&mut self, index: u64, op: OpKind, path: &str) {
        let Some(at) = self.capture else {
            return;
        };
        if !at.wants(op) {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let captures = std::mem::take(&mut self.captures);
        let mut copy = self.clone();
        copy.capture = None;
        copy.record_events = false;
        self.events = events;
        self.captures = captures;
        self.captures.push(CrashPoint {
            op_index: index,
            op,
            path: Arc::from(path),
            world: Box::new(copy),
        });
    }
}

impl SimFs {
    /// Starts (or, with `None`, stops) copying the world before each operation of the kind
    /// given, for [`SimFs::take_crash_points`].
    pub fn capture_crash_points(&self, at: Option<CaptureAt>) {
        super::lock(&self.world).capture = at;
    }

    /// Copies the world now, as a crash point before the next operation.
    pub fn crash_point_now(&self) -> CrashPoint {
        let mut world = super::lock(&self.world);
        let index = world.next_op;
        let events = std::mem::take(&mut world.events);
        let captures = std::mem::take(&mut world.captures);
        let mut copy = world.clone();
        world.events = events;
        world.captures = captures;
        copy.capture = None;
        copy.record_events = false;
        CrashPoint {
            op_index: index,
            op: OpKind::Crash,
            path: Arc::from(""),
            world: Box::new(copy),
        }
    }

    /// The crash points copied so far, oldest first; the list is left empty.
    pub fn take_crash_points(&self) -> Vec<CrashPoint> {
        std::mem::take(&mut super::lock(&self.world).captures)
    }
}
