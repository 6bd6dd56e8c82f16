//! One suite of filesystem behaviours, written once over `&dyn Vfs` and a root directory, and
//! run against both `RealFs` (in a temporary directory) and `SimFs` (rooted at `/db`).
//!
//! Every behaviour asserts the expected outcome of each step itself (so both filesystems being
//! wrong in the same way still fails), and records each outcome in a transcript without
//! absolute paths; the two transcripts must then be identical, step for step.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::fmt::Debug;
use std::io::ErrorKind;
use std::path::Path;
use strata_vfs::{FaultConfig, RealFs, Result, SimFs, Vfs, VfsError, VfsFile};

/// What each step of a behaviour returned, comparable across filesystems.
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    /// Records a successful step and returns its value; panics if the step failed.
    fn ok<T: Debug>(&mut self, step: &str, result: Result<T>) -> T {
        match result {
            Ok(value) => {
                self.lines.push(format!("{step}: ok {value:?}"));
                value
            }
            Err(e) => panic!("{step}: expected success, got {e}"),
        }
    }

    /// Records a successful open (handles differ in their `Debug`, so only "a handle" is kept).
    fn handle(&mut self, step: &str, result: Result<Box<dyn VfsFile>>) -> Box<dyn VfsFile> {
        match result {
            Ok(file) => {
                self.lines.push(format!("{step}: ok <handle>"));
                file
            }
            Err(e) => panic!("{step}: expected success, got {e}"),
        }
    }

    /// Records a failed step: it must fail with `kind` and name `path` in its message.
    fn err<T: Debug>(&mut self, step: &str, result: Result<T>, kind: ErrorKind, path: &Path) {
        match result {
            Ok(value) => panic!("{step}: expected {kind:?}, got Ok({value:?})"),
            Err(e) => {
                check_error(step, &e, kind, path);
                self.lines.push(format!("{step}: err {:?}", e.kind()));
            }
        }
    }

    /// Records a plain observation (a value computed from earlier steps).
    fn note<T: Debug>(&mut self, step: &str, value: T) {
        self.lines.push(format!("{step}: {value:?}"));
    }
}

fn check_error(step: &str, e: &VfsError, kind: ErrorKind, path: &Path) {
    assert_eq!(e.kind(), kind, "{step}: wrong error kind in {e}");
    let message = e.to_string();
    let shown = path.display().to_string();
    assert!(
        message.contains(&shown),
        "{step}: message {message:?} does not name {shown:?}"
    );
    let io: std::io::Error = e.clone().into();
    assert_eq!(
        io.kind(),
        kind,
        "{step}: conversion to io::Error lost the kind"
    );
}

/// Reads a whole file through a fresh read-only handle.
fn read_all(fs: &dyn Vfs, path: &Path) -> Result<Vec<u8>> {
    let file = fs.open_read(path)?;
    let len = file.len()?;
    let mut buf = vec![0; len as usize];
    file.read_exact_at(0, &mut buf)?;
    Ok(buf)
}

fn write_file(fs: &dyn Vfs, path: &Path, data: &[u8]) -> Result<()> {
    let file = fs.create(path)?;
    file.append(data)?;
    file.sync()
}

// ---------------------------------------------------------------------------------------------
// The behaviours.
// ---------------------------------------------------------------------------------------------

fn create_new_file(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    t.note("exists before", fs.exists(&path).ok());
    assert_eq!(fs.exists(&path).ok(), Some(false));
    let file = t.handle("create", fs.create(&path));
    assert_eq!(file.path(), path.as_path());
    assert_eq!(t.ok("len", file.len()), 0);
    assert!(t.ok("is_empty", file.is_empty()));
    assert!(t.ok("exists after", fs.exists(&path)));
    assert_eq!(t.ok("list", fs.list(root)), vec!["a".to_string()]);
    assert_eq!(t.ok("append", file.append(b"hello")), 0);
    assert!(!t.ok("is_empty after append", file.is_empty()));
    assert_eq!(t.ok("read back", read_all(fs, &path)), b"hello");
}

fn create_truncates_existing(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    t.ok("write", write_file(fs, &path, b"0123456789"));
    let reader = t.handle("open_read", fs.open_read(&path));
    assert_eq!(t.ok("len before", reader.len()), 10);
    let file = t.handle("create again", fs.create(&path));
    assert_eq!(t.ok("len after create", file.len()), 0);
    assert_eq!(t.ok("reader len", reader.len()), 0);
    let mut buf = [0u8; 4];
    assert_eq!(t.ok("reader read", reader.read_at(0, &mut buf)), 0);
    assert_eq!(t.ok("read back", read_all(fs, &path)), b"");
    assert_eq!(t.ok("append", file.append(b"xy")), 0);
    assert_eq!(t.ok("read back new", read_all(fs, &path)), b"xy");
    assert_eq!(t.ok("list", fs.list(root)), vec!["a".to_string()]);
}

fn open_missing_file(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("missing");
    t.err("open_read", fs.open_read(&path), ErrorKind::NotFound, &path);
    t.err(
        "open_write",
        fs.open_write(&path),
        ErrorKind::NotFound,
        &path,
    );
    assert!(!t.ok("not created", fs.exists(&path)));
}

fn create_in_missing_directory(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("nodir").join("a");
    t.err("create", fs.create(&path), ErrorKind::NotFound, &path);
    assert!(!t.ok("dir not created", fs.exists(&root.join("nodir"))));
    t.ok("file", write_file(fs, &root.join("f"), b"x"));
    let under_file = root.join("f").join("a");
    t.err(
        "create under a file",
        fs.create(&under_file),
        ErrorKind::NotADirectory,
        &under_file,
    );
}

fn open_directory_as_file(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let dir = root.join("d");
    t.ok("create_dir", fs.create_dir(&dir));
    t.err(
        "open_read",
        fs.open_read(&dir),
        ErrorKind::IsADirectory,
        &dir,
    );
    t.err(
        "open_write",
        fs.open_write(&dir),
        ErrorKind::IsADirectory,
        &dir,
    );
    t.err("create", fs.create(&dir), ErrorKind::IsADirectory, &dir);
    assert_eq!(t.ok("list", fs.list(root)), vec!["d".to_string()]);
}

fn read_at_short_and_past_eof(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    t.ok("write", write_file(fs, &path, b"0123456789"));
    let file = t.handle("open_read", fs.open_read(&path));
    let mut buf = [0u8; 8];
    assert_eq!(t.ok("read in range", file.read_at(1, &mut buf)), 8);
    assert_eq!(&buf, b"12345678");
    let mut buf = [0xAAu8; 8];
    assert_eq!(t.ok("short read", file.read_at(5, &mut buf)), 5);
    assert_eq!(&buf[..5], b"56789");
    assert_eq!(
        &buf[5..],
        &[0xAA; 3],
        "a short read must not touch the rest"
    );
    assert_eq!(t.ok("read at eof", file.read_at(10, &mut buf)), 0);
    assert_eq!(t.ok("read past eof", file.read_at(1000, &mut buf)), 0);
    assert_eq!(t.ok("empty read", file.read_at(3, &mut [])), 0);
    let mut buf = [0u8; 8];
    t.ok("read_exact in range", file.read_exact_at(2, &mut buf));
    assert_eq!(&buf, b"23456789");
    t.err(
        "read_exact past end",
        file.read_exact_at(5, &mut buf),
        ErrorKind::UnexpectedEof,
        &path,
    );
    t.err(
        "read_exact beyond eof",
        file.read_exact_at(100, &mut buf),
        ErrorKind::UnexpectedEof,
        &path,
    );
}

fn append_returns_offsets(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let file = t.handle("create", fs.create(&path));
    let offsets: Vec<u64> = [&b"hello"[..], b"", b" world", b"!"]
        .iter()
        .map(|data| t.ok("append", file.append(data)))
        .collect();
    assert_eq!(offsets, vec![0, 5, 5, 11]);
    assert_eq!(t.ok("len", file.len()), 12);
    assert_eq!(t.ok("read back", read_all(fs, &path)), b"hello world!");
    let writer = t.handle("open_write", fs.open_write(&path));
    assert_eq!(t.ok("append via reopened", writer.append(b"?")), 12);
    assert_eq!(
        t.ok("read back again", read_all(fs, &path)),
        b"hello world!?"
    );
}

fn write_at_past_eof_fills_zeros(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let file = t.handle("create", fs.create(&path));
    t.ok("append", file.append(b"abc"));
    t.ok("write past eof", file.write_at(10, b"xyz"));
    assert_eq!(t.ok("len", file.len()), 13);
    let mut expected = b"abc".to_vec();
    expected.extend_from_slice(&[0; 7]);
    expected.extend_from_slice(b"xyz");
    assert_eq!(t.ok("read back", read_all(fs, &path)), expected);
    t.ok("overwrite inside", file.write_at(1, b"Q"));
    assert_eq!(t.ok("len unchanged", file.len()), 13);
    expected[1] = b'Q';
    assert_eq!(t.ok("read back overwrite", read_all(fs, &path)), expected);
    t.ok("write straddling eof", file.write_at(12, b"12"));
    assert_eq!(t.ok("len grown by one", file.len()), 14);
    assert_eq!(t.ok("append after write_at", file.append(b"!")), 14);
    // An empty write changes nothing, not even the length (pwrite of 0 bytes).
    t.ok("empty write past eof", file.write_at(100, b""));
    assert_eq!(t.ok("len after empty write", file.len()), 15);
    let reader = t.handle("open_read", fs.open_read(&path));
    assert_eq!(t.ok("len seen by reader", reader.len()), 15);
}

fn write_mapped_stays_within_allocated_space(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let file = t.handle("create", fs.create(&path));
    // Past the end of an empty file: refused, nothing written.
    t.err(
        "mapped write into nothing",
        file.write_mapped(0, b"x"),
        ErrorKind::InvalidInput,
        &path,
    );
    t.ok("zeros", file.write_at(0, &vec![0u8; 300 * 1024]));
    t.ok("mapped write", file.write_mapped(5, b"hello"));
    // Far into the space, past where a first mapping might end.
    t.ok("mapped write far", file.write_mapped(200 * 1024, b"far"));
    t.ok(
        "mapped write last byte",
        file.write_mapped(300 * 1024 - 1, b"!"),
    );
    t.err(
        "mapped write straddling the end",
        file.write_mapped(300 * 1024 - 1, b"!!"),
        ErrorKind::InvalidInput,
        &path,
    );
    assert_eq!(t.ok("len unchanged", file.len()), 300 * 1024);
    // Another handle (another process, after this one died) reads what was stored.
    let reader = t.handle("open_read", fs.open_read(&path));
    let mut buf = [0u8; 5];
    t.ok("read mapped", reader.read_exact_at(5, &mut buf));
    assert_eq!(&buf, b"hello");
    let mut far = [0u8; 3];
    t.ok("read far", reader.read_exact_at(200 * 1024, &mut far));
    assert_eq!(&far, b"far");
    // A later pwrite over mapped bytes and a mapped store over written ones agree.
    t.ok("write over mapped", file.write_at(6, b"E"));
    t.ok("mapped over written", file.write_mapped(7, b"L"));
    t.ok("sync", file.sync());
    t.ok("read back", reader.read_exact_at(5, &mut buf));
    assert_eq!(&buf, b"hELlo");
    t.ok("set_len drops the mapping", file.set_len(10));
    t.err(
        "mapped write past the new end",
        file.write_mapped(200 * 1024, b"x"),
        ErrorKind::InvalidInput,
        &path,
    );
}

fn set_len_shrinks_and_grows(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let file = t.handle("create", fs.create(&path));
    t.ok("append", file.append(b"0123456789"));
    t.ok("shrink", file.set_len(4));
    assert_eq!(t.ok("len after shrink", file.len()), 4);
    assert_eq!(t.ok("read after shrink", read_all(fs, &path)), b"0123");
    t.ok("grow", file.set_len(8));
    assert_eq!(t.ok("len after grow", file.len()), 8);
    assert_eq!(
        t.ok("read after grow", read_all(fs, &path)),
        b"0123\0\0\0\0"
    );
    t.ok("same length", file.set_len(8));
    assert_eq!(t.ok("append after set_len", file.append(b"x")), 8);
    t.ok("to zero", file.set_len(0));
    assert!(t.ok("empty", file.is_empty()));
    assert_eq!(t.ok("append after truncate", file.append(b"y")), 0);
    t.ok("sync", file.sync());
    assert_eq!(t.ok("read final", read_all(fs, &path)), b"y");
}

fn len_is_shared_between_handles(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let writer = t.handle("create", fs.create(&path));
    let reader = t.handle("open_read", fs.open_read(&path));
    assert_eq!(t.ok("reader len empty", reader.len()), 0);
    t.ok("append", writer.append(b"abcdef"));
    assert_eq!(t.ok("reader len", reader.len()), 6);
    let mut buf = [0u8; 6];
    t.ok("reader read", reader.read_exact_at(0, &mut buf));
    assert_eq!(&buf, b"abcdef");
    t.ok("write_at", writer.write_at(2, b"ZZ"));
    t.ok("reader read again", reader.read_exact_at(0, &mut buf));
    assert_eq!(&buf, b"abZZef");
}

fn sync_and_sync_dir(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    let file = t.handle("create", fs.create(&path));
    t.ok("sync empty", file.sync());
    t.ok("append", file.append(b"data"));
    t.ok("sync", file.sync());
    t.ok("sync again", file.sync());
    t.ok("sync_dir", fs.sync_dir(root));
    t.ok("sync_dir again", fs.sync_dir(root));
    let sub = root.join("sub");
    t.ok("create_dir", fs.create_dir(&sub));
    t.ok("sync_dir sub", fs.sync_dir(&sub));
    let missing = root.join("missing");
    t.err(
        "sync_dir missing",
        fs.sync_dir(&missing),
        ErrorKind::NotFound,
        &missing,
    );
    assert_eq!(t.ok("read back", read_all(fs, &path)), b"data");
}

fn read_only_handle_rejects_writes(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    t.ok("write", write_file(fs, &path, b"keep"));
    let file = t.handle("open_read", fs.open_read(&path));
    t.err(
        "append",
        file.append(b"x"),
        ErrorKind::PermissionDenied,
        &path,
    );
    t.err(
        "write_at",
        file.write_at(0, b"x"),
        ErrorKind::PermissionDenied,
        &path,
    );
    t.err(
        "set_len",
        file.set_len(1),
        ErrorKind::PermissionDenied,
        &path,
    );
    t.err("sync", file.sync(), ErrorKind::PermissionDenied, &path);
    assert_eq!(t.ok("len", file.len()), 4);
    assert_eq!(t.ok("read back", read_all(fs, &path)), b"keep");
}

fn rename_replaces_target_atomically(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let from = root.join("a");
    let to = root.join("b");
    t.ok("write a", write_file(fs, &from, b"new"));
    t.ok("write b", write_file(fs, &to, b"old contents"));
    let old_reader = t.handle("open old b", fs.open_read(&to));
    let writer = t.handle("open a", fs.open_write(&from));
    t.ok("rename", fs.rename(&from, &to));
    assert!(!t.ok("a gone", fs.exists(&from)));
    assert!(t.ok("b there", fs.exists(&to)));
    assert_eq!(t.ok("list", fs.list(root)), vec!["b".to_string()]);
    assert_eq!(t.ok("b is new", read_all(fs, &to)), b"new");
    // The replaced file lives on for handles that were open on it.
    let mut buf = [0u8; 12];
    t.ok("old handle", old_reader.read_exact_at(0, &mut buf));
    assert_eq!(&buf, b"old contents");
    // A handle follows its file across the rename.
    t.ok("append via old name's handle", writer.append(b"er"));
    assert_eq!(t.ok("b grew", read_all(fs, &to)), b"newer");
    t.err(
        "open old name",
        fs.open_read(&from),
        ErrorKind::NotFound,
        &from,
    );
}

fn rename_errors(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let missing = root.join("missing");
    let target = root.join("target");
    t.err(
        "missing source",
        fs.rename(&missing, &target),
        ErrorKind::NotFound,
        &missing,
    );
    assert!(!t.ok("target not created", fs.exists(&target)));
    let a = root.join("a");
    t.ok("write a", write_file(fs, &a, b"abc"));
    t.ok("rename to itself", fs.rename(&a, &a));
    assert_eq!(t.ok("content kept", read_all(fs, &a)), b"abc");
    let into_missing_dir = root.join("nodir").join("a");
    t.err(
        "into missing dir",
        fs.rename(&a, &into_missing_dir),
        ErrorKind::NotFound,
        &into_missing_dir,
    );
    let dir = root.join("d");
    t.ok("create_dir", fs.create_dir(&dir));
    t.err(
        "onto a directory",
        fs.rename(&a, &dir),
        ErrorKind::IsADirectory,
        &dir,
    );
    assert_eq!(t.ok("source kept", read_all(fs, &a)), b"abc");
    assert_eq!(
        t.ok("list", fs.list(root)),
        vec!["a".to_string(), "d".to_string()]
    );
}

fn remove_files(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("a");
    t.ok("write", write_file(fs, &path, b"abc"));
    let reader = t.handle("open_read", fs.open_read(&path));
    t.ok("remove", fs.remove(&path));
    assert!(!t.ok("gone", fs.exists(&path)));
    assert_eq!(t.ok("list", fs.list(root)), Vec::<String>::new());
    t.err(
        "open removed",
        fs.open_read(&path),
        ErrorKind::NotFound,
        &path,
    );
    t.err("remove again", fs.remove(&path), ErrorKind::NotFound, &path);
    let mut buf = [0u8; 3];
    t.ok("open handle still reads", reader.read_exact_at(0, &mut buf));
    assert_eq!(&buf, b"abc");
    let dir = root.join("d");
    t.ok("create_dir", fs.create_dir(&dir));
    t.err(
        "remove a directory",
        fs.remove(&dir),
        ErrorKind::IsADirectory,
        &dir,
    );
    t.ok("recreate", write_file(fs, &path, b"z"));
    assert_eq!(t.ok("new content", read_all(fs, &path)), b"z");
}

fn list_is_sorted(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    assert_eq!(t.ok("empty", fs.list(root)), Vec::<String>::new());
    for name in ["c", "a", "b", "B", "a1"] {
        t.handle("create", fs.create(&root.join(name)));
    }
    t.ok("create_dir", fs.create_dir(&root.join("d")));
    assert_eq!(
        t.ok("list", fs.list(root)),
        vec!["B", "a", "a1", "b", "c", "d"]
    );
    assert_eq!(
        t.ok("empty subdir", fs.list(&root.join("d"))),
        Vec::<String>::new()
    );
    let missing = root.join("missing");
    t.err(
        "missing dir",
        fs.list(&missing),
        ErrorKind::NotFound,
        &missing,
    );
    let file = root.join("a");
    t.err("a file", fs.list(&file), ErrorKind::NotADirectory, &file);
}

fn create_dir_rules(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let sub = root.join("sub");
    t.ok("create_dir", fs.create_dir(&sub));
    assert!(t.ok("exists", fs.exists(&sub)));
    t.err("again", fs.create_dir(&sub), ErrorKind::AlreadyExists, &sub);
    let deep = root.join("x").join("y");
    t.err(
        "missing parent",
        fs.create_dir(&deep),
        ErrorKind::NotFound,
        &deep,
    );
    assert!(!t.ok("parent not created", fs.exists(&root.join("x"))));
    let file = root.join("f");
    t.ok("file", write_file(fs, &file, b""));
    t.err(
        "over a file",
        fs.create_dir(&file),
        ErrorKind::AlreadyExists,
        &file,
    );
    let under_file = file.join("sub");
    t.err(
        "under a file",
        fs.create_dir(&under_file),
        ErrorKind::NotADirectory,
        &under_file,
    );
    t.ok("file inside", write_file(fs, &sub.join("inner"), b"1"));
    assert_eq!(t.ok("list sub", fs.list(&sub)), vec!["inner".to_string()]);
}

fn create_dir_all_is_idempotent(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let deep = root.join("x").join("y").join("z");
    t.ok("create_dir_all", fs.create_dir_all(&deep));
    t.ok("again", fs.create_dir_all(&deep));
    t.ok("a prefix", fs.create_dir_all(&root.join("x")));
    t.ok("the root", fs.create_dir_all(root));
    for dir in [root.join("x"), root.join("x").join("y"), deep.clone()] {
        assert!(t.ok("exists", fs.exists(&dir)));
    }
    assert_eq!(
        t.ok("list x", fs.list(&root.join("x"))),
        vec!["y".to_string()]
    );
    t.ok("file inside", write_file(fs, &deep.join("f"), b"1"));
    t.ok("still fine", fs.create_dir_all(&deep));
    assert_eq!(t.ok("contents kept", fs.list(&deep)), vec!["f".to_string()]);
    let file = deep.join("f");
    t.err(
        "over a file",
        fs.create_dir_all(&file),
        ErrorKind::AlreadyExists,
        &file,
    );
    let through_file = file.join("sub");
    t.err(
        "through a file",
        fs.create_dir_all(&through_file),
        ErrorKind::NotADirectory,
        &through_file,
    );
}

fn lock_is_exclusive_until_dropped(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    let path = root.join("LOCK");
    let first = fs.lock(&path);
    t.note("first lock taken", first.is_ok());
    let first = first.unwrap();
    t.err("second lock", fs.lock(&path), ErrorKind::WouldBlock, &path);
    let other = fs.lock(&root.join("OTHER"));
    t.note("another name is independent", other.is_ok());
    drop(first);
    let again = fs.lock(&path);
    t.note("taken again after the guard is dropped", again.is_ok());
    let missing = root.join("nodir").join("LOCK");
    t.err(
        "lock in a missing directory",
        fs.lock(&missing),
        ErrorKind::NotFound,
        &missing,
    );
}

fn exists_reports_files_and_dirs(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
    assert!(t.ok("root", fs.exists(root)));
    assert!(!t.ok("missing", fs.exists(&root.join("nope"))));
    assert!(!t.ok(
        "missing nested",
        fs.exists(&root.join("nope").join("deeper"))
    ));
    t.ok("file", write_file(fs, &root.join("f"), b""));
    t.ok("dir", fs.create_dir(&root.join("d")));
    assert!(t.ok("file exists", fs.exists(&root.join("f"))));
    assert!(t.ok("dir exists", fs.exists(&root.join("d"))));
    assert!(!t.ok("through a file", fs.exists(&root.join("f").join("x"))));
    t.ok("remove", fs.remove(&root.join("f")));
    assert!(!t.ok("removed", fs.exists(&root.join("f"))));
}

// ---------------------------------------------------------------------------------------------
// Running each behaviour on both filesystems.
// ---------------------------------------------------------------------------------------------

type Behaviour = fn(&dyn Vfs, &Path, &mut Transcript);

fn run_on_both(name: &str, behaviour: Behaviour) {
    let tmp = tempfile::tempdir().unwrap();
    let real = RealFs::new();
    let mut real_transcript = Transcript::default();
    behaviour(&real, tmp.path(), &mut real_transcript);

    let sim = SimFs::new(42, FaultConfig::none());
    let root = Path::new("/db");
    sim.create_dir_all(root).unwrap();
    let mut sim_transcript = Transcript::default();
    behaviour(&sim, root, &mut sim_transcript);

    assert!(!real_transcript.lines.is_empty(), "{name} recorded nothing");
    assert_eq!(
        real_transcript.lines, sim_transcript.lines,
        "RealFs (left) and SimFs (right) disagree on {name}"
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_on_both(stringify!($name), super::$name);
            }
        )*

        /// Every behaviour, one after another in one directory tree per filesystem (each in its
        /// own subdirectory), so that state left by one cannot hide a difference in another.
        #[test]
        fn all_behaviours_in_one_tree() {
            let behaviours: Vec<(&str, Behaviour)> = vec![$((stringify!($name), super::$name as Behaviour)),*];
            let tmp = tempfile::tempdir().unwrap();
            let real = RealFs::new();
            let sim = SimFs::new(7, FaultConfig::none());
            let mut real_transcript = Transcript::default();
            let mut sim_transcript = Transcript::default();
            for (name, behaviour) in behaviours {
                let real_root = tmp.path().join(name);
                real.create_dir(&real_root).unwrap();
                behaviour(&real, &real_root, &mut real_transcript);
                let sim_root = Path::new("/").join(name);
                sim.create_dir(&sim_root).unwrap();
                behaviour(&sim, &sim_root, &mut sim_transcript);
            }
            assert_eq!(real_transcript.lines, sim_transcript.lines);
        }
    };
}

mod on_both {
    use super::*;

    conformance!(
        create_new_file,
        create_truncates_existing,
        open_missing_file,
        create_in_missing_directory,
        open_directory_as_file,
        read_at_short_and_past_eof,
        append_returns_offsets,
        write_at_past_eof_fills_zeros,
        write_mapped_stays_within_allocated_space,
        set_len_shrinks_and_grows,
        len_is_shared_between_handles,
        sync_and_sync_dir,
        read_only_handle_rejects_writes,
        rename_replaces_target_atomically,
        rename_errors,
        remove_files,
        list_is_sorted,
        create_dir_rules,
        create_dir_all_is_idempotent,
        exists_reports_files_and_dirs,
        lock_is_exclusive_until_dropped,
    );
}

/// The transcript comparison itself can fail: a filesystem that answers differently is caught
/// even when each answer passes the behaviour's own assertions.
#[test]
#[should_panic(expected = "disagree")]
fn transcripts_that_differ_are_caught() {
    fn differs(fs: &dyn Vfs, root: &Path, t: &mut Transcript) {
        // RealFs roots are absolute temporary paths; SimFs's root here is "/db".
        t.note("root is /db", root == Path::new("/db"));
        let _ = fs;
    }
    run_on_both("differs", differs);
}
