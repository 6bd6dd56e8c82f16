//! The manifest's unit tests: edits round-trip, prefixes, and misplaced sectors.
use super::*;
use crate::filenames::manifest_name;
use std::path::PathBuf;
use strata_vfs::{FaultConfig, SimFs};

fn table(number: u64, level: u32) -> TableMeta {
    TableMeta {
        number,
        level,
        file_size: 1000 + number,
        entries: 10,
        smallest: b"a".to_vec(),
        largest: format!("z{number}").into_bytes(),
    }
}

#[test]
fn a_failed_append_refuses_every_later_append() {
    let fs = SimFs::new(9, FaultConfig::none());
    let path = Path::new("MANIFEST-000001");
    let mut writer = ManifestWriter::create(&fs, path, &ManifestState::default()).unwrap();
    fs.set_config(FaultConfig {
        sync_failure_rate: 1.0,
        ..FaultConfig::none()
    });
    let edit = VersionEdit {
        next_file_number: Some(5),
        ..Default::default()
    };
    assert!(matches!(writer.append(&edit), Err(Error::Io(_))));
    fs.set_config(FaultConfig::none());
    // The failed sync forgot its dirty data; a "successful" append now would put a
    // durable record after a lost one.
    assert!(matches!(writer.append(&edit), Err(Error::Poisoned { .. })));
}

#[test]
fn a_table_beyond_the_last_level_is_rejected() {
    let mut state = ManifestState::default();
    let edit = VersionEdit {
        added: vec![table(3, 7)],
        ..Default::default()
    };
    assert!(state
        .apply(&edit)
        .unwrap_err()
        .contains("beyond the last level"));
}

#[test]
fn edits_round_trip() {
    let edit = VersionEdit {
        log_number: Some(3),
        next_file_number: Some(9),
        last_sequence: Some(1 << 40),
        added: vec![table(4, 0), table(5, 1)],
        deleted: vec![(0, 2)],
        closed_wal: Some((7, 4096)),
    };
    assert_eq!(VersionEdit::decode(&edit.encode()).unwrap(), edit);
    assert_eq!(
        VersionEdit::decode_record(&edit.encode_at(1 << 33)).unwrap(),
        (edit.clone(), Some(1 << 33))
    );
    let encoded = edit.encode();
    for cut in 1..encoded.len() {
        // Truncation either fails or decodes to something else; it never panics.
        if let Ok(decoded) = VersionEdit::decode(&encoded[..cut]) {
            assert_ne!(decoded, edit);
        }
    }
}

/// Each sync pads the manifest to a sector boundary, so every edit starts a sector of its
/// own, and a sector read from another place of the file (a misdirected read) or written
/// to another place (a misdirected write) is a run of whole, valid edits. Seeds 957 and
/// 1107 (sequential) and 283 (concurrent) of `--faults all,medium`: the manifest read
/// without its snapshot or without a flush's edit, and recovery deleted the tables it no
/// longer listed. Every such image must be corruption.
#[test]
fn a_sector_of_edits_read_or_written_at_another_offset_is_corruption() {
    let fs = SimFs::new(11, FaultConfig::none());
    let path = Path::new("MANIFEST-000001");
    let mut state = ManifestState {
        log_number: 1,
        next_file_number: 2,
        tables: [(1, table(1, 1))].into_iter().collect(),
        ..Default::default()
    };
    let mut writer = ManifestWriter::create(&fs, path, &state).unwrap();
    for number in 2..5 {
        let edit = VersionEdit {
            log_number: Some(number + 1),
            next_file_number: Some(number + 2),
            last_sequence: Some(10 * number),
            added: vec![table(number, 0)],
            ..Default::default()
        };
        writer.append(&edit).unwrap();
        state.apply(&edit).unwrap();
    }
    let close = VersionEdit {
        closed_wal: Some((5, 0)),
        ..Default::default()
    };
    writer.append(&close).unwrap();
    state.apply(&close).unwrap();
    let data = fs.snapshot()[path.to_str().unwrap()].clone();
    let sector = wal::SECTOR_SIZE as usize;
    let sectors = data.len() / sector;
    assert_eq!(sectors, 5, "one sector per edit");
    let file = fs.open_read(path).unwrap();
    assert_eq!(read_manifest(file.as_ref()).unwrap(), state);

    let mut images = Vec::new();
    for from in 1..sectors {
        // A read of the whole file served from sector `from` on (zeros past the end).
        let mut image = data[from * sector..].to_vec();
        image.resize(data.len(), 0);
        images.push((format!("the file read from sector {from}"), image));
    }
    for to in 0..sectors {
        for from in (0..sectors).filter(|&from| from != to) {
            // Sector `from`'s write landed on sector `to`: beside its own copy, or
            // instead of it (zeros where it was meant).
            let mut image = data.clone();
            image.copy_within(from * sector..(from + 1) * sector, to * sector);
            images.push((format!("sector {from} also at sector {to}"), image.clone()));
            image[from * sector..(from + 1) * sector].fill(0);
            images.push((format!("sector {from} at sector {to} instead"), image));
        }
    }
    let mut accepted = Vec::new();
    for (number, (what, image)) in images.iter().enumerate() {
        let copy = PathBuf::from(format!("MANIFEST-{:06}", 100 + number));
        let out = fs.create(&copy).unwrap();
        out.write_at(0, image).unwrap();
        out.sync().unwrap();
        let file = fs.open_read(&copy).unwrap();
        match read_manifest(file.as_ref()) {
            Err(error) if error.is_corruption() => {}
            Err(error) => panic!("{what}: {error}"),
            Ok(read) => accepted.push(format!(
                "{what}: tables {:?}{}",
                read.tables.keys().collect::<Vec<_>>(),
                if read == state { " (the state)" } else { "" }
            )),
        }
    }
    assert!(
        accepted.is_empty(),
        "{} of {} images read as a manifest:\n{}",
        accepted.len(),
        images.len(),
        accepted.join("\n")
    );
}

#[test]
fn a_manifest_replays_to_its_state_and_detects_corruption() {
    let fs = SimFs::new(5, FaultConfig::none());
    let dir = Path::new("db");
    fs.create_dir_all(dir).unwrap();
    let mut state = ManifestState {
        log_number: 1,
        next_file_number: 2,
        ..Default::default()
    };
    let path = dir.join(manifest_name(1));
    let mut writer = ManifestWriter::create(&fs, &path, &state).unwrap();
    for number in 2..6 {
        let edit = VersionEdit {
            next_file_number: Some(number + 1),
            added: vec![table(number, 0)],
            ..Default::default()
        };
        writer.append(&edit).unwrap();
        state.apply(&edit).unwrap();
    }
    set_current(&fs, dir, &manifest_name(1)).unwrap();
    assert_eq!(read_current(&fs, dir).unwrap(), manifest_name(1));
    let file = fs.open_read(&path).unwrap();
    assert_eq!(read_manifest(file.as_ref()).unwrap(), state);
    // A flipped bit in the second record, with valid records after it: corruption.
    let (records, _) = wal::read_log(file.as_ref()).unwrap();
    fs.flip_bit(&path, records[1].0 + crate::wal::HEADER_SIZE as u64 + 1, 0)
        .unwrap();
    let file = fs.open_read(&path).unwrap();
    let error = read_manifest(file.as_ref()).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("MANIFEST-000001"), "{error}");
}
