use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Bytes ascending, then the header (a sequence number) descending: the memtable's order.
struct NewestFirst;

impl Comparator<u64> for NewestFirst {
    fn compare(&self, a: Entry<'_, u64>, b: Entry<'_, u64>) -> Ordering {
        a.bytes.cmp(b.bytes).then_with(|| b.header.cmp(a.header))
    }
}

type Model = BTreeSet<(Vec<u8>, std::cmp::Reverse<u64>)>;

fn owned(entry: Entry<'_, u64>) -> (Vec<u8>, std::cmp::Reverse<u64>) {
    (entry.bytes.to_vec(), std::cmp::Reverse(*entry.header))
}

type Owned = (Vec<u8>, std::cmp::Reverse<u64>);

/// Every entry from `start` on, one `step` at a time.
fn walk<'a>(
    start: Option<Position<'a, u64, NewestFirst>>,
    step: impl Fn(&Position<'a, u64, NewestFirst>) -> Option<Position<'a, u64, NewestFirst>>,
) -> Vec<Owned> {
    std::iter::successors(start, step)
        .map(|position| owned(position.entry()))
        .collect()
}

fn forward(list: &SkipList<u64, NewestFirst>) -> Vec<Owned> {
    walk(list.first(), Position::next)
}

fn backward(list: &SkipList<u64, NewestFirst>) -> Vec<Owned> {
    walk(list.last(), Position::prev)
}

fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, u64)>> {
    proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), 0u64..4), 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Walks forward and back, and every kind of seek, agree with a `BTreeSet` of the same
    /// entries; an insert of an entry already there is refused.
    #[test]
    fn the_list_agrees_with_a_sorted_set(inserts in entries(), queries in entries()) {
        let list = SkipList::new(NewestFirst);
        let mut model = Model::new();
        for (bytes, header) in &inserts {
            let fresh = model.insert((bytes.clone(), std::cmp::Reverse(*header)));
            let (first, second) = bytes.split_at(bytes.len() / 2);
            prop_assert_eq!(list.insert(*header, &[first, second]).is_some(), fresh);
        }
        prop_assert_eq!(list.len(), model.len());
        prop_assert_eq!(list.is_empty(), model.is_empty());
        let expected: Vec<_> = model.iter().cloned().collect();
        prop_assert_eq!(&forward(&list), &expected);
        let mut reversed = expected.clone();
        reversed.reverse();
        prop_assert_eq!(&backward(&list), &reversed);
        for (bytes, header) in &queries {
            let key = (bytes.clone(), std::cmp::Reverse(*header));
            let query = Entry { header, bytes };
            let at_or_after = model.range(key.clone()..).next();
            let after = model
                .range((std::ops::Bound::Excluded(key.clone()), std::ops::Bound::Unbounded))
                .next();
            let at_or_before = model.range(..=key.clone()).next_back();
            let before = model.range(..key.clone()).next_back();
            let found = |position: Option<Position<'_, u64, NewestFirst>>| position.map(|p| owned(p.entry()));
            let got = [
                found(list.after(query, true)),
                found(list.after(query, false)),
                found(list.before(query, true)),
                found(list.before(query, false)),
            ];
            let want = [at_or_after.cloned(), after.cloned(), at_or_before.cloned(), before.cloned()];
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn towers_are_about_a_quarter_taller_each_level() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut counts = [0usize; MAX_HEIGHT + 1];
    for _ in 0..100_000 {
        counts[random_height(&mut state)] += 1;
    }
    assert_eq!(counts[0], 0);
    // Level 1: 3/4 of the towers; level 2: 3/16; level 3: 3/64.
    assert!((73_000..77_000).contains(&counts[1]), "{counts:?}");
    assert!((17_500..20_000).contains(&counts[2]), "{counts:?}");
    assert!((4_000..5_400).contains(&counts[3]), "{counts:?}");
}

#[test]
fn memory_is_a_node_per_entry_plus_at_most_a_chunk() {
    let list = SkipList::new(NewestFirst);
    let value = [7u8; 100];
    let mut nodes = 0;
    let mut taken = 0;
    for i in 0..20_000u64 {
        taken += list
            .insert(i, &[&i.to_be_bytes(), &value])
            .expect("a new entry");
        nodes += Node::<u64>::layout(1, 108).0.size();
    }
    // What inserts report is what the arena handed out: all of it but chunks' tails.
    assert!(taken >= nodes && taken <= list.allocated(), "{taken}");
    assert!(
        list.allocated() - taken < 2 * crate::arena::MAX_CHUNK,
        "{taken}"
    );
    // Towers above height 1 add 8 bytes a level: about a third of a link per node.
    let allocated = list.allocated();
    assert!(allocated >= nodes, "{allocated} < {nodes}");
    assert!(
        allocated < nodes + nodes / 20 + crate::arena::MAX_CHUNK,
        "{allocated}"
    );
}

#[test]
#[should_panic(expected = "two inserts into one skip list at once")]
fn a_second_writer_inside_at_once_is_refused() {
    let flag = AtomicBool::new(false);
    let _first = WriterGuard::enter(&flag);
    let _second = WriterGuard::enter(&flag);
}

#[test]
fn a_writer_may_enter_again_after_the_last_one_left() {
    let flag = AtomicBool::new(false);
    drop(WriterGuard::enter(&flag));
    drop(WriterGuard::enter(&flag));
}

/// Readers walk and search while one thread inserts: every entry they reach is whole (its
/// bytes are a function of its header), in order, and every entry published before a search
/// began is found by it.
#[test]
fn readers_see_whole_entries_in_order_while_the_writer_inserts() {
    const ENTRIES: u64 = 60_000;
    fn bytes_of(i: u64) -> Vec<u8> {
        let key = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
        let value = vec![(i % 251) as u8; (i % 40) as usize];
        [key.as_slice(), &value].concat()
    }
    struct ByKey;
    impl Comparator<u64> for ByKey {
        fn compare(&self, a: Entry<'_, u64>, b: Entry<'_, u64>) -> Ordering {
            a.bytes[..8].cmp(&b.bytes[..8])
        }
    }
    let list = Arc::new(SkipList::new(ByKey));
    let published = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let list = Arc::clone(&list);
            let published = Arc::clone(&published);
            std::thread::spawn(move || {
                let mut walks = 0;
                loop {
                    let done = published.load(Memory::Acquire) as u64;
                    // Every entry published before this walk began is found by a search.
                    for probe in (0..done).step_by(997).skip(reader) {
                        let bytes = bytes_of(probe);
                        let found = list
                            .after(
                                Entry {
                                    header: &probe,
                                    bytes: &bytes,
                                },
                                true,
                            )
                            .expect("a published entry is found");
                        assert_eq!(*found.entry().header, probe);
                    }
                    let mut seen = 0u64;
                    let mut previous: Option<Vec<u8>> = None;
                    let mut at = list.first();
                    while let Some(position) = at {
                        let entry = position.entry();
                        assert_eq!(
                            entry.bytes,
                            bytes_of(*entry.header).as_slice(),
                            "a torn entry"
                        );
                        if let Some(previous) = &previous {
                            assert!(previous.as_slice() < &entry.bytes[..8], "out of order");
                        }
                        previous = Some(entry.bytes[..8].to_vec());
                        seen += 1;
                        at = position.next();
                    }
                    assert!(
                        seen >= done,
                        "a walk saw {seen} of {done} published entries"
                    );
                    walks += 1;
                    if done == ENTRIES {
                        return walks;
                    }
                }
            })
        })
        .collect();
    for i in 0..ENTRIES {
        let bytes = bytes_of(i);
        assert!(list.insert(i, &[&bytes[..3], &bytes[3..]]).is_some());
        published.store(i as usize + 1, Memory::Release);
    }
    for reader in readers {
        let walks = reader.join().expect("a reader panicked");
        assert!(walks >= 1);
    }
    assert_eq!(list.len(), ENTRIES as usize);
}
