use super::*;

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn labels_sort_read_and_round_trip_like_the_pairs_they_stand_for() {
    let lists = [
        pairs(&[("status", "200"), ("host", "web-1")]),
        pairs(&[("host", "web-1")]),
        pairs(&[]),
        pairs(&[("host", "web-1"), ("status", "2000")]),
        pairs(&[("host", "web"), ("status", "\"x\"")]),
        pairs(&[("a", ""), ("b", "")]),
    ];
    let mut sorted: Vec<Vec<(String, String)>> = lists
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.sort();
            l
        })
        .collect();
    let mut labels: Vec<Labels> = lists.iter().cloned().map(Labels::from).collect();
    sorted.sort();
    labels.sort();
    let back: Vec<Vec<(String, String)>> = labels.iter().map(Labels::to_vec).collect();
    assert_eq!(back, sorted);
    let l = &labels[labels.len() - 1];
    assert_eq!(l.get("status"), Some("2000"));
    assert_eq!(l.get("nope"), None);
    assert_eq!(format!("{l:?}"), r#"{"host": "web-1", "status": "2000"}"#);
    let bytes = bincode::serialize(l).unwrap();
    assert_eq!(bincode::deserialize::<Labels>(&bytes).unwrap(), *l);
    assert_eq!(
        serde_json::to_string(l).unwrap(),
        r#"[["host","web-1"],["status","2000"]]"#
    );
    assert!(Labels::default().is_empty());
}

/// Values whose lengths are not ASCII bytes (200: `C8`; 33,731: `C3 83`,
/// which reads as "Ã") and non-ASCII values read back as they went in.
#[test]
fn long_and_non_ascii_labels_read_back() {
    let long = "x".repeat(200);
    let longer = format!("{}\u{e9}", "y".repeat(33_729));
    assert_eq!(longer.len(), 0x83c3);
    for p in [
        vec![("a", "\u{e9}t\u{e9}"), ("b", long.as_str()), ("c", "z")],
        vec![("a", longer.as_str()), ("b", "\u{1F600}"), ("c", "")],
        vec![("\u{e9}", long.as_str()), ("z", longer.as_str())],
    ] {
        let labels = Labels::from_pairs(&p);
        let mut sorted = p.clone();
        sorted.sort();
        assert!(labels.iter().eq(sorted.iter().copied()));
        assert_eq!(
            labels.get("c"),
            p.iter().find(|(k, _)| *k == "c").map(|(_, v)| *v)
        );
    }
}

/// The pairs a rule keeps, copied as bytes, are the labels made from
/// those pairs as text, for every subset of names (none, some, all).
#[test]
fn selected_pairs_are_the_labels_of_those_pairs() {
    let long = "v".repeat(300);
    let labels = Labels::from_pairs(&[
        ("host", "web-1"),
        ("status", "200"),
        ("method", "\u{e9}\""),
        ("path", long.as_str()),
        ("empty", ""),
    ]);
    let names: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
    for mask in 0..(1u32 << names.len()) {
        let kept = |k: &str| {
            names
                .iter()
                .position(|n| *n == k)
                .is_some_and(|i| mask >> i & 1 == 1)
        };
        let got = labels.select(kept);
        let want = Labels::from_sorted(labels.iter().filter(|(k, _)| kept(k)));
        assert_eq!(got, want, "mask {mask:b}");
        // By place: bit i of the mask is the i-th pair of `names`.
        let at = (0..names.len())
            .filter(|&i| kept(names[i]))
            .fold(0u64, |m, i| m | 1 << i);
        assert_eq!(labels.select_at(at), want, "mask {mask:b}");
        assert_eq!(labels.select_at(at).as_bytes(), want.as_bytes());
        assert_eq!(got.to_vec(), want.to_vec());
        assert_eq!(got.is_empty(), mask == 0);
    }
    assert!(Labels::default().select(|_| true).is_empty());
}

#[test]
fn labels_from_a_key_are_the_labels_of_its_decoded_parts() {
    let mut key = Vec::new();
    for part in ["web-1", "", "GET \"x\"", "\u{e9}t\u{e9}"] {
        push_key_part(&mut key, part);
    }
    // Names sorted, each with the key part of its value; part 4 is missing.
    let names: Vec<(String, usize)> = [("a", 2), ("host", 0), ("m", 1), ("z", 3), ("zz", 4)]
        .iter()
        .map(|(n, p)| (n.to_string(), *p))
        .collect();
    let from_key = Labels::from_key(&names, &key);
    let want = Labels::from_pairs(&[
        ("a", "GET \"x\""),
        ("host", "web-1"),
        ("m", ""),
        ("z", "\u{e9}t\u{e9}"),
        ("zz", ""),
    ]);
    assert_eq!(from_key, want);
    // A window's labels in one buffer: each set as from its own key.
    let mut other = Vec::new();
    for part in ["web-2", "x", "", "y"] {
        push_key_part(&mut other, part);
    }
    let keys = [
        Some((&names[..], &key[..])),
        None,
        Some((&names[..], &other[..])),
    ];
    let shared = Labels::for_keys(keys.iter().copied());
    assert_eq!(shared.len(), 3);
    assert_eq!(shared[0], want);
    assert_eq!(shared[0].to_vec(), want.to_vec());
    assert!(shared[1].is_empty());
    assert_eq!(shared[2], Labels::from_key(&names, &other));
    assert_eq!(shared[2].get("host"), Some("web-2"));
    assert!(shared[2] < shared[0], "a = \"\" sorts first");
    // Over several buffers: each set is still its own key's.
    let many: Vec<Vec<u8>> = (0..6000)
        .map(|i| {
            let mut k = Vec::new();
            for part in [format!("web-{i}"), format!("{}", i * 7), "x".repeat(i % 40)] {
                push_key_part(&mut k, &part);
            }
            k
        })
        .collect();
    let sets = Labels::for_keys(
        many.iter()
            .enumerate()
            .map(|(i, k)| (i % 97 != 0).then_some((&names[..], &k[..]))),
    );
    assert_eq!(sets.len(), many.len());
    for (i, (set, k)) in sets.iter().zip(&many).enumerate() {
        if i % 97 == 0 {
            assert!(set.is_empty());
        } else {
            assert_eq!(*set, Labels::from_key(&names, k), "set {i}");
        }
    }
    assert_eq!(
        from_key.iter().collect::<Vec<_>>(),
        want.iter().collect::<Vec<_>>()
    );
}

/// Hashes `l` as a `HashMap` would.
fn hash_of(l: &Labels) -> u64 {
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    state.hash_one(l)
}

/// Labels read from a series key (not encoded) are the labels encoded
/// from it in every way a sink or a stage reads them: pairs as text and
/// bytes, length, emptiness, encoding, selection, serialization, and
/// equality, order and hash against each other and against encoded
/// labels. Values cover an empty one, a NUL, non-ASCII text, a length
/// that is not an ASCII byte, and keys missing a part or cut short.
#[test]
fn labels_held_as_a_key_read_compare_and_hash_as_encoded_ones() {
    let long = "v".repeat(200);
    let values = [
        "",
        "\0",
        "a",
        "a\0",
        "10.0.1.2",
        "10.0.1.20",
        "\u{e9}t\u{e9}",
        &long,
    ];
    let layouts: Vec<Vec<(String, usize)>> = [
        &[][..],
        &[("host", 0)][..],
        &[("host", 0), ("remote_addr", 1)][..],
        &[("host", 0), ("method", 2), ("status", 1)][..],
        &[("a", 1), ("host", 0)][..],
    ]
    .iter()
    .map(|l| l.iter().map(|&(n, p)| (n.to_string(), p)).collect())
    .collect();
    let mut held: Vec<(Labels, Labels, bool)> = Vec::new();
    for names in &layouts {
        let shared = Arc::new(KeyNames::new(names));
        for (i, v) in values.iter().enumerate() {
            for w in [values[(i + 3) % values.len()], values[i]] {
                // A part for each name, as aggregation makes keys.
                let parts = &["web-1", v, w][..names.len()];
                let mut key = Vec::new();
                for part in parts {
                    push_key_part(&mut key, part);
                }
                // Whole, missing its last part, and cut inside a part.
                let last = parts.last().map_or(0, |p| 4 + p.len());
                let cuts = [key.len(), key.len() - last, key.len().saturating_sub(3)];
                for cut in cuts {
                    let key = &key[..cut];
                    let of_key = Labels::of_key(&shared, SeriesKey::from(key));
                    held.push((of_key, Labels::from_key(names, key), cut == cuts[0]));
                }
            }
        }
    }
    for (k, e, whole) in &held {
        let whole = *whole;
        assert_eq!(k, e);
        assert_eq!(k.cmp(e), Ordering::Equal);
        assert_eq!(hash_of(k), hash_of(e));
        assert!(k.iter().eq(e.iter()));
        assert!(k.byte_pairs().eq(e.byte_pairs()));
        if whole {
            assert_eq!(k.encoded_len(), e.encoded_len());
        }
        assert_eq!(k.is_empty(), e.is_empty());
        assert_eq!(k.as_bytes(), e.as_bytes());
        assert_eq!(k.get("host"), e.get("host"));
        assert_eq!(k.get("nope"), None);
        assert_eq!(k.select(|n| n != "host"), e.select(|n| n != "host"));
        for at in 0..8u64 {
            assert_eq!(k.select_at(at), e.select_at(at), "{at:b}");
            assert_eq!(k.select_at(at).to_vec(), e.select_at(at).to_vec());
            let want: Vec<(String, String)> = (e.to_vec().into_iter().enumerate())
                .filter(|(i, _)| at >> i & 1 == 1)
                .map(|(_, p)| p)
                .collect();
            assert_eq!(k.select_at(at).to_vec(), want, "{at:b}");
        }
        assert!(matches!(k.select(|_| true).repr, Repr::Encoded { .. }));
        assert_eq!(format!("{k:?}"), format!("{e:?}"));
        let bytes = bincode::serialize(k).unwrap();
        assert_eq!(bytes, bincode::serialize(e).unwrap());
        assert_eq!(bincode::deserialize::<Labels>(&bytes).unwrap(), *e);
        let copy = k.clone();
        assert!(matches!(copy.repr, Repr::Key { .. }));
        assert_eq!(copy, *k);
    }
    // Every pair, held each way: the order and equality of the encodings.
    for (ka, ea, _) in &held {
        for (kb, eb, _) in &held {
            let want = ea.cmp(eb);
            assert_eq!(ka.cmp(kb), want, "{ea:?} vs {eb:?}");
            assert_eq!(ka.cmp(eb), want, "{ea:?} vs {eb:?}");
            assert_eq!(ea.cmp(kb), want, "{ea:?} vs {eb:?}");
            assert_eq!(ka == kb, want == Ordering::Equal);
            assert_eq!(ka == eb, want == Ordering::Equal);
        }
    }
}
