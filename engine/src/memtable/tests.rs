//! The memtable's tests: byte order with awkward keys, reads at every sequence against a
//! brute-force model (forward, reverse, in chunks), and the one-insert-per-version invariant.

use super::*;

/// Keys that tie on their first 16 bytes, prefixes of each other, and bytes above 0x7f:
/// the prefix comparison must order them exactly as their bytes.
fn awkward_keys() -> Vec<Vec<u8>> {
    let mut keys = vec![
        vec![],
        vec![0],
        vec![0, 0],
        b"a".to_vec(),
        b"a\0".to_vec(),
        vec![255; 16],
        vec![255; 17],
        [vec![255; 16], vec![0]].concat(),
    ];
    for i in 0..40u32 {
        keys.push(format!("a-shared-prefix-of-16+/{i}").into_bytes());
        keys.push(format!("{i:016}").into_bytes());
        keys.push(format!("{i:015}").into_bytes());
    }
    keys
}

#[test]
fn entries_come_out_in_byte_order_and_are_found() {
    let memtable = Memtable::new(1 << 20);
    let mut keys = awkward_keys();
    // Insert in a scrambled (deterministic) order.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|i| (i * 7919) % keys.len());
    for &i in &order {
        memtable.insert(&keys[i], 1, Some(&keys[i]));
    }
    keys.sort();
    let mut seen = Vec::new();
    memtable.for_each(|key, versions| {
        assert_eq!(versions.as_slice(), &[(1, Some(key))]);
        seen.push(key.to_vec());
    });
    assert_eq!(seen, keys);
    for key in &keys {
        assert_eq!(
            memtable.get_hashed(key, KeyHash::of(key), 1),
            Some(Some(key.clone()))
        );
    }
    let absent = b"a-shared-prefix-of-16+/4x".to_vec();
    assert_eq!(memtable.get_hashed(&absent, KeyHash::of(&absent), 1), None);
    let lower = b"a-shared-prefix-of-16+/1".to_vec();
    let upper = b"a-shared-prefix-of-16+/2".to_vec();
    let mut out = Vec::new();
    memtable.collect_range(
        Bound::Excluded(&lower),
        Bound::Included(&upper),
        false,
        usize::MAX,
        1,
        &mut out,
    );
    let expected: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| **k > lower && **k <= upper)
        .cloned()
        .collect();
    assert_eq!(
        out.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn a_reader_sees_the_newest_version_at_or_below_its_sequence() {
    let memtable = Memtable::new(1 << 20);
    memtable.insert(b"k", 3, Some(b"three"));
    memtable.insert(b"k", 5, None);
    memtable.insert(b"k", 9, Some(b"nine"));
    let at = |sequence| memtable.get_unfiltered(b"k", sequence);
    assert_eq!(at(2), None, "nothing is visible below the first version");
    assert_eq!(at(3), Some(Some(b"three".to_vec())));
    assert_eq!(at(4), Some(Some(b"three".to_vec())));
    assert_eq!(at(5), Some(None), "the tombstone");
    assert_eq!(at(8), Some(None));
    assert_eq!(at(9), Some(Some(b"nine".to_vec())));
    let mut versions = Vec::new();
    memtable.for_each(|_, all| {
        versions = all
            .iter()
            .map(|(sequence, slot)| (*sequence, slot.map(<[u8]>::to_vec)))
            .collect()
    });
    assert_eq!(
        versions,
        vec![
            (9, Some(b"nine".to_vec())),
            (5, None),
            (3, Some(b"three".to_vec()))
        ]
    );
    let mut out = Vec::new();
    let last = memtable.collect_range(Bound::Unbounded, Bound::Unbounded, true, 10, 4, &mut out);
    assert_eq!(out, vec![(b"k".to_vec(), Some(b"three".to_vec()))]);
    assert_eq!(last, Some(b"k".to_vec()));
}

/// Every read path against a brute-force model: many versions per key (tombstones among
/// them), read at every sequence, forward and reverse, in chunks of every size.
#[test]
fn every_read_agrees_with_a_brute_force_model_at_every_sequence() {
    let memtable = Memtable::new(1 << 20);
    let mut model: Vec<(Vec<u8>, u64, Slot)> = Vec::new();
    let keys: Vec<Vec<u8>> = awkward_keys().into_iter().take(30).collect();
    let mut state = 7u64;
    for sequence in 1..=120u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = keys[(state >> 33) as usize % keys.len()].clone();
        let value = !(state >> 20).is_multiple_of(4);
        let slot = value.then(|| format!("v{sequence}").into_bytes());
        memtable.insert(&key, sequence, slot.as_deref());
        model.push((key, sequence, slot));
    }
    let visible = |key: &[u8], at: u64| -> Option<Slot> {
        model
            .iter()
            .filter(|(k, sequence, _)| k == key && *sequence <= at)
            .max_by_key(|(_, sequence, _)| *sequence)
            .map(|(_, _, slot)| slot.clone())
    };
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    sorted_keys.dedup();
    for at in [0, 1, 2, 17, 60, 119, 120, u64::MAX] {
        let expected: Vec<(Vec<u8>, Slot)> = sorted_keys
            .iter()
            .filter_map(|key| visible(key, at).map(|slot| (key.clone(), slot)))
            .collect();
        for key in &sorted_keys {
            assert_eq!(
                memtable.get_unfiltered(key, at),
                visible(key, at),
                "{key:?}@{at}"
            );
        }
        for chunk in [1, 2, 3, 7, usize::MAX] {
            for reverse in [false, true] {
                let mut lower: Bound<Vec<u8>> = Bound::Unbounded;
                let mut upper: Bound<Vec<u8>> = Bound::Unbounded;
                let mut out = Vec::new();
                loop {
                    let last = memtable.collect_range(
                        lower.as_ref().map(Vec::as_slice),
                        upper.as_ref().map(Vec::as_slice),
                        reverse,
                        chunk,
                        at,
                        &mut out,
                    );
                    match (last, reverse) {
                        (None, _) => break,
                        (Some(last), false) => lower = Bound::Excluded(last),
                        (Some(last), true) => upper = Bound::Excluded(last),
                    }
                }
                let mut wanted = expected.clone();
                if reverse {
                    wanted.reverse();
                }
                assert_eq!(out, wanted, "at {at}, chunks of {chunk}, reverse {reverse}");
            }
        }
    }
    let mut flushed = Vec::new();
    memtable.for_each(|key, versions| {
        for (sequence, slot) in versions.iter() {
            flushed.push((key.to_vec(), *sequence, slot.map(<[u8]>::to_vec)));
        }
    });
    let mut expected = model.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    assert_eq!(
        flushed, expected,
        "a flush sees every version, newest first"
    );
}

#[test]
#[should_panic(expected = "inserted twice")]
fn a_version_inserted_twice_is_a_broken_invariant() {
    let memtable = Memtable::new(1 << 20);
    memtable.insert(b"k", 3, Some(b"a"));
    memtable.insert(b"k", 3, Some(b"b"));
}
