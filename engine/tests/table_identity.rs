//! Format 3 binds a table's bytes to its number and each block to its offset: a misdirected
//! write that puts another table's bytes (or another block) where a table's should be is
//! corruption, never data. (Before format 3, the older of two equal-sized tables written
//! over the newer was read as the newer: found by the medium-fault experiments.)
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use strata_engine::sstable::{SstReader, TableBuilder};
use strata_engine::{Compression, Error};
use strata_vfs::{FaultConfig, SimFs, Vfs};

fn write_table(fs: &SimFs, number: u64, value: &[u8]) -> PathBuf {
    let path = strata_engine::filenames::table_path(Path::new("db"), number);
    let mut builder = TableBuilder::new(
        fs.create(&path).unwrap(),
        number,
        256,
        10,
        Compression::None,
    );
    for i in 0..40u32 {
        builder
            .add(format!("key{i:03}").as_bytes(), 0, Some(value))
            .unwrap();
    }
    builder.finish().unwrap();
    path
}

fn bytes(fs: &SimFs, path: &Path) -> Vec<u8> {
    fs.snapshot()[path.to_str().unwrap()].clone()
}

fn overwrite(fs: &SimFs, path: &Path, data: &[u8]) {
    let file = fs.open_write(path).unwrap();
    file.write_at(0, data).unwrap();
    file.sync().unwrap();
}

#[test]
fn another_tables_bytes_under_a_tables_name_are_corruption() {
    let fs = SimFs::new(1, FaultConfig::none());
    fs.create_dir_all(Path::new("db")).unwrap();
    let old = write_table(&fs, 5, b"old-value");
    let new = write_table(&fs, 6, b"new-value");
    let old_bytes = bytes(&fs, &old);
    assert_eq!(old_bytes.len(), bytes(&fs, &new).len(), "equal sizes");
    // Both read as themselves.
    assert!(SstReader::open(&fs, &old, 5, None).is_ok());
    let reader = SstReader::open(&fs, &new, 6, None).unwrap();
    assert!(reader.read_block(0).is_ok());
    // The older table's bytes where the newer one's should be.
    overwrite(&fs, &new, &old_bytes);
    match SstReader::open(&fs, &new, 6, None) {
        Err(Error::Corruption { .. }) => {}
        other => panic!("the old table read as table 6: {other:?}"),
    }
}

#[test]
fn a_block_moved_to_another_offset_is_corruption() {
    let fs = SimFs::new(2, FaultConfig::none());
    fs.create_dir_all(Path::new("db")).unwrap();
    let path = write_table(&fs, 7, &[b'v'; 40]);
    let reader = SstReader::open(&fs, &path, 7, None).unwrap();
    let index = reader.index().entries();
    let (i, j) = (0..index.len())
        .flat_map(|i| (i + 1..index.len()).map(move |j| (i, j)))
        .find(|&(i, j)| index[i].size == index[j].size)
        .expect("two data blocks of one size");
    let (first, second) = (&index[i], &index[j]);
    let mut data = bytes(&fs, &path);
    let span = first.size as usize + 5;
    let a = data[first.offset as usize..][..span].to_vec();
    data[second.offset as usize..][..span].copy_from_slice(&a);
    overwrite(&fs, &path, &data);
    let reader = SstReader::open(&fs, &path, 7, None).unwrap();
    assert!(reader.read_block(i).is_ok());
    match reader.read_block(j) {
        Err(Error::Corruption { .. }) => {}
        other => panic!("block {i}'s bytes read as block {j}: {other:?}"),
    }
}
