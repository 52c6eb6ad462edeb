use super::*;

fn key(parts: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        push_key_part(&mut b, p);
    }
    b
}

/// Keys in one shared buffer read their own bytes, compare as bytes, and
/// serialize (bincode, between a cluster's members) exactly as the
/// `Box<[u8]>` keys of earlier versions did.
#[test]
fn keys_in_a_shared_buffer_read_and_serialize_as_their_bytes() {
    let (a, b) = (key(&["web-1", "200"]), key(&["web-1", "404", "GET"]));
    let buf = Arc::new([a.clone(), b.clone()].concat());
    let ka = SeriesKey::in_buffer(&buf, 0..a.len());
    let kb = SeriesKey::in_buffer(&buf, a.len()..buf.len());
    assert_eq!((&*ka, &*kb), (&a[..], &b[..]));
    assert_eq!(ka, SeriesKey::from(a.clone()));
    assert_ne!(ka, kb);
    for (k, bytes) in [(&ka, &a), (&kb, &b)] {
        let boxed: Box<[u8]> = bytes.clone().into();
        let wire = bincode::serialize(k).unwrap();
        assert_eq!(wire, bincode::serialize(&boxed).unwrap());
        let back: SeriesKey = bincode::deserialize(&wire).unwrap();
        assert_eq!(&*back, &bytes[..]);
    }
    assert_eq!(format!("{ka:?}"), format!("{:?}", &a[..]));
    // A range outside the buffer reads as an empty key, never panics.
    assert!(SeriesKey::in_buffer(&buf, 3..buf.len() + 1).is_empty());
}

#[test]
fn keys_round_trip_even_with_separators_in_values() {
    let b = key(&["web\u{1f}1", "", "200"]);
    assert_eq!(
        decode_key(&b),
        (
            "web\u{1f}1".to_string(),
            vec![String::new(), "200".to_string()]
        )
    );
}

#[test]
fn keys_sort_as_their_host_and_labels_do() {
    let parts: [&[&str]; 7] = [
        &["web", "b"],
        &["web", "ab"],
        &["we", "zz"],
        &["web", "a", "x"],
        &["web", "a"],
        &["web", ""],
        &["web\u{0}", "a"],
    ];
    let mut by_key: Vec<&[&str]> = parts.to_vec();
    by_key.sort_by(|a, b| cmp_keys(&key(a), &key(b)));
    let mut by_strings = parts.to_vec();
    by_strings.sort();
    assert_eq!(by_key, by_strings);
}

/// Every pair of keys of up to three parts drawn from values that share
/// prefixes, differ in length, hold NUL or non-ASCII bytes, or are longer
/// than a word: the keys compare as their parts do, and as the plain
/// part-by-part comparison does.
#[test]
fn keys_compare_as_their_parts_do_for_every_pair() {
    let values = [
        "",
        "a",
        "ab",
        "b",
        "\0",
        "a\0",
        "web-1",
        "web-10",
        "web-2",
        "10.0.0.1",
        "10.0.0.10",
        "\u{e9}",
        "abcdefgh",
        "abcdefghi",
        "abcdefgi",
    ];
    let mut keys: Vec<Vec<&str>> = vec![vec![]];
    for v in values {
        keys.push(vec![v]);
        for w in values {
            keys.push(vec![v, w]);
            for x in ["", "b", "abcdefghij"] {
                keys.push(vec![v, w, x]);
            }
        }
    }
    let packed: Vec<Vec<u8>> = keys.iter().map(|k| key(k)).collect();
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate() {
            let got = cmp_keys(&packed[i], &packed[j]);
            assert_eq!(got, a.cmp(b), "{a:?} vs {b:?}");
            assert_eq!(got, cmp_parts(&packed[i], &packed[j]), "{a:?} vs {b:?}");
        }
    }
}

/// Keys with one host and keys with many sort as their parts do; a key's
/// prefix never orders it against another key wrongly.
#[test]
fn sorting_unique_keys_gives_the_order_of_their_parts() {
    let values = [
        "",
        "a",
        "ab",
        "b",
        "\0",
        "\0\0",
        "a\0",
        "a\0b",
        "10.0.0.1",
        "10.0.0.10",
        "10.0.0.2",
        "\u{e9}",
        "abcdefgh",
        "abcdefghi",
        "abcdefgi",
        "\u{ff}",
        "abcdefghijklmnop",
        "abcdefghijklmnopq",
        "abcdefghijklmno\0",
    ];
    let mut many_hosts: Vec<Vec<&str>> = Vec::new();
    for v in values {
        for w in values {
            many_hosts.push(vec![v, w]);
            many_hosts.push(vec![v, w, ""]);
        }
    }
    let one_host: Vec<Vec<&str>> = many_hosts
        .iter()
        .map(|k| std::iter::once("web-1").chain(k.iter().copied()).collect())
        .collect();
    for keys in [many_hosts, one_host] {
        let packed: Vec<Vec<u8>> = keys.iter().map(|k| key(k)).collect();
        for (a, pa) in keys.iter().zip(&packed) {
            for (b, pb) in keys.iter().zip(&packed) {
                if order_prefix(pa) < order_prefix(pb) {
                    assert!(a < b, "{a:?} vs {b:?}");
                }
            }
        }
        // Scrambled, then sorted.
        let n = keys.len();
        let scrambled: Vec<usize> = (0..n).map(|i| (i * 7919) % n).collect();
        let got: Vec<&Vec<&str>> = sorted_order(n, |i| &packed[scrambled[i]])
            .iter()
            .map(|&i| &keys[scrambled[i as usize]])
            .collect();
        let mut want: Vec<&Vec<&str>> = keys.iter().collect();
        want.sort();
        assert_eq!(got, want);
        // A few keys (compared directly) and a few more (by prefix).
        for k in 0..=2 * SMALL_SORT {
            let got: Vec<&Vec<&str>> = sorted_order(k, |i| &packed[scrambled[i]])
                .iter()
                .map(|&i| &keys[scrambled[i as usize]])
                .collect();
            let mut want: Vec<&Vec<&str>> = scrambled[..k].iter().map(|&i| &keys[i]).collect();
            want.sort();
            assert_eq!(got, want, "{k} keys");
        }
    }
}

/// The byte-at-a-time prefix [`order_prefix`] replaced.
fn order_prefix_bytewise(mut key: &[u8]) -> u128 {
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = out.get_mut(n) {
                *slot = b;
                n += 1;
            }
        }
        n < out.len()
    };
    while let Some((part, rest)) = split_key_part(key) {
        for &b in part {
            let more = if b == 0 { put(&[0, 0xff]) } else { put(&[b]) };
            if !more {
                return u128::from_be_bytes(out);
            }
        }
        if !put(&[0, 0]) {
            break;
        }
        key = rest;
    }
    u128::from_be_bytes(out)
}

/// Prefixes of keys of 0-4 parts, each part 0-17 bytes with or without
/// NULs at any place, and of damaged keys, are the byte-at-a-time ones;
/// the radix sort orders (prefix, index) pairs as `sort_unstable` does.
#[test]
fn prefixes_and_their_sort_are_the_plain_ones() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mut pairs = Vec::new();
    for i in 0..20_000u32 {
        let mut k = Vec::new();
        for _ in 0..next(5) {
            let len = next(18) as usize;
            let part: String = (0..len)
                .map(|_| match next(12) {
                    0 => '\0',
                    1 => '\u{ff}',
                    c => (b'a' + c as u8) as char,
                })
                .collect();
            push_key_part(&mut k, &part);
        }
        if next(50) == 0 && k.len() > 5 {
            let cut = next(k.len() as u64) as usize;
            k.truncate(cut); // damaged: a length past the end
        }
        let p = order_prefix(&k);
        assert_eq!(p, order_prefix_bytewise(&k), "{k:?}");
        // Few distinct bytes, so that numbers tie and bytes repeat.
        pairs.push((p >> (8 * next(16)), i));
    }
    for n in [0, 1, 2, 100, pairs.len()] {
        let mut got = pairs[..n].to_vec();
        let mut want = got.clone();
        radix_sort(&mut got);
        want.sort_unstable();
        assert_eq!(got, want, "{n} pairs");
    }
}

/// A damaged key (a length past its end) compares without panicking, as
/// the part-by-part comparison says.
#[test]
fn damaged_keys_compare_without_panicking() {
    let good = key(&["web-1", "abc"]);
    let mut long = good.clone();
    long[9..13].copy_from_slice(&100u32.to_le_bytes());
    let short = good[..good.len() - 1].to_vec();
    for (a, b) in [
        (&good, &long),
        (&long, &good),
        (&good, &short),
        (&short, &long),
    ] {
        assert_eq!(cmp_keys(a, b), cmp_parts(a, b));
    }
}

/// The shared leading whole parts: what every key has in common, part by
/// part; a part only partly shared, or cut short in a damaged key, is not.
/// Prefixes taken past them order keys as the keys compare.
#[test]
fn shared_parts_are_whole_and_prefixes_past_them_order_as_keys_do() {
    let k = |parts: &[&str]| key(parts);
    let len = |keys: &[Vec<u8>]| shared_parts_len(keys.iter().map(|k| &k[..]));
    assert_eq!(len(&[]), 0);
    let one = k(&["host", "web-1"]);
    assert_eq!(len(std::slice::from_ref(&one)), one.len());
    // `host` shared; `web-1` and `web-10` share bytes, not the part.
    let keys = [k(&["host", "web-1", "GET"]), k(&["host", "web-10", "GET"])];
    assert_eq!(len(&keys), 8);
    let keys = [k(&["host", "web-1", "GET"]), k(&["host", "web-1"])];
    assert_eq!(len(&keys), 8 + 4 + 5);
    assert_eq!(len(&[k(&["a"]), k(&["b"])]), 0);
    // A part whose length runs past the key's end is not whole.
    let mut damaged = k(&["host"]);
    damaged.extend_from_slice(&9u32.to_le_bytes());
    damaged.extend_from_slice(b"web");
    assert_eq!(len(&[damaged.clone(), damaged]), 8);
    // Keys of one name and many values: the prefixes past the shared parts
    // never contradict the keys' order.
    let values = [
        "",
        "a",
        "web-1",
        "web-10",
        "web-2",
        "\0",
        "abcdefghijklmnopq",
    ];
    let mut keys: Vec<Vec<&str>> = Vec::new();
    for v in values {
        for w in values {
            keys.push(vec!["host", v, "method", w]);
        }
    }
    let packed: Vec<Vec<u8>> = keys.iter().map(|p| key(p)).collect();
    let skip = len(&packed);
    assert_eq!(skip, 8);
    for (a, pa) in keys.iter().zip(&packed) {
        for (b, pb) in keys.iter().zip(&packed) {
            if KeyPrefix::of(pa, skip) < KeyPrefix::of(pb, skip) {
                assert!(a < b, "{a:?} vs {b:?}");
            }
        }
    }
}

/// Keys of a window's records of one name (labels encoded as keys): `host`,
/// a host, `method`, a method, `status`, a status, cut short at any part.
fn record_keys(raw: &[(usize, usize, usize, usize)]) -> Vec<Vec<u8>> {
    const VALUES: &[&str] = &[
        "",
        "\0",
        "a",
        "web-1",
        "web-10",
        "web-2",
        "GET",
        "abcdefghijklmnopq",
    ];
    raw.iter()
        .map(|&(h, m, s, cut)| {
            let parts = ["host", VALUES[h], "method", VALUES[m], "status", VALUES[s]];
            key(&parts[..parts.len() - cut])
        })
        .collect()
}

/// A record key's first two parts (`host` and the host), what its records
/// come sorted by.
fn host_key(&(h, ..): &(usize, usize, usize, usize)) -> Vec<u8> {
    record_keys(&[(h, 0, 0, 4)]).remove(0)
}

/// The order a stable sort by [`cmp_keys`] gives.
fn stably_sorted(keys: &[Vec<u8>]) -> Vec<u32> {
    let mut want: Vec<u32> = (0..keys.len() as u32).collect();
    want.sort_by(|&a, &b| cmp_keys(&keys[a as usize], &keys[b as usize]));
    want
}

proptest::proptest! {
    /// Any keys, and keys sorted by their host but not past it (as host records
    /// come when the metric's key orders the labels differently), in runs of
    /// one head short and long: the order of a stable sort.
    #[test]
    fn stable_sorted_order_is_a_stable_sort_by_key(
        by_host in proptest::prelude::any::<bool>(),
        raw in proptest::collection::vec((0usize..8, 0usize..8, 0usize..8, 0usize..4), 0..300),
    ) {
        let mut raw = raw;
        if by_host {
            raw.sort_by(|a, b| cmp_keys(&host_key(a), &host_key(b)));
        }
        let keys = record_keys(&raw);
        let got = stable_sorted_order(keys.len(), |i| &keys[i]);
        proptest::prop_assert_eq!(got, stably_sorted(&keys));
    }
}

/// Keys sorted by their head (the first two parts past those all share) in
/// short runs are ordered run by run; a head out of order, or a run longer than
/// [`HEAD_RUN`], leaves them to the numbers' sort. Damaged keys do not panic.
#[test]
fn keys_sorted_by_their_heads_are_sorted_run_by_run() {
    let raw: Vec<(usize, usize, usize, usize)> = (0..8)
        .flat_map(|h| [(h, 6, 2, 0), (h, 2, 6, 0), (h, 6, 1, 0)])
        .collect();
    let mut raw = raw;
    raw.sort_by(|a, b| cmp_keys(&host_key(a), &host_key(b)));
    let keys = record_keys(&raw);
    let got = order_within_sorted_heads(
        keys.len(),
        shared_parts_len(keys.iter().map(|k| &k[..])),
        |i| &keys[i],
    );
    assert_eq!(got, Some(stably_sorted(&keys)));
    let mut backwards = keys.clone();
    backwards.reverse();
    assert_eq!(
        order_within_sorted_heads(backwards.len(), 8, |i| &backwards[i]),
        None
    );
    let one_head = record_keys(&vec![(3, 6, 2, 0); HEAD_RUN + 1]);
    assert_eq!(
        order_within_sorted_heads(one_head.len(), 8, |i| &one_head[i]),
        None
    );
    assert_eq!(
        stable_sorted_order(one_head.len(), |i| &one_head[i]),
        stably_sorted(&one_head)
    );
    let mut damaged = key(&["host", "web-1"]);
    damaged.extend_from_slice(&100u32.to_le_bytes());
    damaged.extend_from_slice(b"GET");
    let damaged = [damaged.clone(), key(&["host", "web-1", "method"]), damaged];
    assert_eq!(
        stable_sorted_order(3, |i| &damaged[i]),
        stably_sorted(&damaged)
    );
}
