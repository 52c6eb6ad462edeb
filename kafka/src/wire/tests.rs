use proptest::prelude::*;

use super::*;

fn as_pairs<'a>(headers: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, Option<&'a [u8]>)> {
    headers
        .iter()
        .map(|(n, v)| (*n, Some(v.as_slice())))
        .collect()
}

fn group() -> GroupId {
    GroupId {
        host: "web-1".into(),
        group: "/var/log/nginx/access.log".into(),
        epoch: 0x0123_4567_89ab_cdef,
    }
}

#[test]
fn a_line_reads_back_as_written() {
    let headers = line_headers(&group(), 42, "2049:1234");
    let record = decode(as_pairs(&headers), b"GET / 200").unwrap();
    assert_eq!(
        record,
        AgentRecord::Line {
            group: group().as_ref(),
            seq: 42,
            file: "2049:1234",
            line: b"GET / 200"
        }
    );
}

#[test]
fn a_heartbeat_reads_back_as_written() {
    let headers = heartbeat_headers(&group(), 7, 1_733_350_000_123);
    let record = decode(as_pairs(&headers), b"").unwrap();
    assert_eq!(
        record,
        AgentRecord::Heartbeat {
            group: group().as_ref(),
            seq: 7,
            at_ms: 1_733_350_000_123
        }
    );
}

#[test]
fn a_record_without_the_version_header_is_foreign() {
    let record = decode([("source", Some(&b"x"[..]))], b"plain line").unwrap();
    assert_eq!(
        record,
        AgentRecord::Foreign {
            payload: b"plain line"
        }
    );
}

#[test]
fn bad_headers_are_named() {
    let mut headers = line_headers(&group(), 1, "f");
    headers.retain(|(n, _)| *n != header::HOST);
    assert_eq!(
        decode(as_pairs(&headers), b""),
        Err(WireError::Missing(header::HOST))
    );

    let mut headers = line_headers(&group(), 1, "f");
    headers.push((header::SEQ, b"+5".to_vec()));
    let err = decode(as_pairs(&headers), b"").unwrap_err();
    assert!(err.to_string().contains("tm-seq"), "{err}");

    let mut headers = line_headers(&group(), 1, "f");
    headers.push((header::VERSION, b"2".to_vec()));
    assert_eq!(
        decode(as_pairs(&headers), b""),
        Err(WireError::Version("2".into()))
    );

    let mut headers = line_headers(&group(), 1, "f");
    headers.push((header::EPOCH, b"xyz".to_vec()));
    assert!(matches!(
        decode(as_pairs(&headers), b""),
        Err(WireError::Bad {
            name: "tm-epoch",
            ..
        })
    ));

    let mut headers = heartbeat_headers(&group(), 1, 5);
    headers.push((header::KIND, b"hello".to_vec()));
    assert!(matches!(
        decode(as_pairs(&headers), b""),
        Err(WireError::Bad {
            name: "tm-kind",
            ..
        })
    ));
}

#[test]
fn the_key_is_host_slash_group() {
    assert_eq!(group().key(), b"web-1//var/log/nginx/access.log");
}

proptest! {
    #[test]
    fn any_line_round_trips(host in "\\PC{0,20}", grp in "\\PC{0,40}", epoch: u64, seq: u64,
                            file in "\\PC{0,20}", line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let id = GroupId { host, group: grp, epoch };
        let headers = line_headers(&id, seq, &file);
        let record = decode(as_pairs(&headers), &line).unwrap();
        prop_assert_eq!(record, AgentRecord::Line { group: id.as_ref(), seq, file: &file, line: &line });
    }

    #[test]
    fn decode_never_panics(names in proptest::collection::vec(
            prop_oneof![Just("tm-v"), Just("tm-kind"), Just("tm-host"), Just("tm-group"),
                        Just("tm-epoch"), Just("tm-seq"), Just("tm-file"), Just("tm-at"), Just("x")], 0..10),
            values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 10),
            payload in proptest::collection::vec(any::<u8>(), 0..50)) {
        let headers: Vec<(&str, Option<&[u8]>)> =
            names.iter().zip(&values).map(|(n, v)| (*n, v.as_deref())).collect();
        let _ = decode(headers, &payload);
    }

    /// The byte-level readers of `decode` take exactly what the text parsers took.
    #[test]
    fn numbers_read_from_bytes_as_from_text(value in prop_oneof![
            "[0-9]{1,21}", "[0-9a-fA-F]{16}", "[+-]?[0-9a-fx ]{0,18}",
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| String::from_utf8_lossy(&v).into_owned())]) {
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let want = digits.then(|| value.parse::<u64>().ok()).flatten();
        prop_assert_eq!(decimal(value.as_bytes()), want);
        let hex = value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit());
        let want = hex.then(|| u64::from_str_radix(&value, 16).ok()).flatten();
        prop_assert_eq!(hex16(value.as_bytes()), want);
    }

    /// The headers as written before they were formatted on the stack (format!,
    /// to_string): byte for byte the same.
    #[test]
    fn headers_are_byte_identical_to_the_formatted_ones(host in "\\PC{0,20}", grp in "\\PC{0,40}",
            epoch: u64, seq: u64, at_ms: i64, file in "\\PC{0,20}") {
        let id = GroupId { host, group: grp, epoch };
        let common = |kind: &str| vec![
            (header::VERSION, VERSION.as_bytes().to_vec()),
            (header::KIND, kind.as_bytes().to_vec()),
            (header::HOST, id.host.as_bytes().to_vec()),
            (header::GROUP, id.group.as_bytes().to_vec()),
            (header::EPOCH, format!("{:016x}", id.epoch).into_bytes()),
            (header::SEQ, seq.to_string().into_bytes()),
        ];
        let mut line = common("line");
        line.push((header::FILE, file.as_bytes().to_vec()));
        prop_assert_eq!(line_headers(&id, seq, &file), line);
        let mut beat = common("heartbeat");
        beat.push((header::AT, at_ms.to_string().into_bytes()));
        prop_assert_eq!(heartbeat_headers(&id, seq, at_ms), beat);
    }
}

/// Review R16b (scratch): `decode` as it was before merge f81725f (text first, then
/// parse), field for field; the new byte readers must give the same record or the
/// same error for every combination of tricky epoch, sequence and kind values.
fn old_decode<'a>(
    headers: &[(&'a str, Option<&'a [u8]>)],
    payload: &'a [u8],
) -> Result<AgentRecord<'a>, WireError> {
    let mut found = Found::default();
    for &(name, value) in headers {
        let slot = match name {
            header::VERSION => &mut found.version,
            header::KIND => &mut found.kind,
            header::HOST => &mut found.host,
            header::GROUP => &mut found.group,
            header::EPOCH => &mut found.epoch,
            header::SEQ => &mut found.seq,
            header::FILE => &mut found.file,
            header::AT => &mut found.at,
            _ => continue,
        };
        *slot = Some(value.unwrap_or_default());
    }
    let Some(version) = found.version else {
        return Ok(AgentRecord::Foreign { payload });
    };
    if version != VERSION.as_bytes() {
        return Err(WireError::Version(lossy(version)));
    }
    let parse_epoch = |value: &str| {
        if value.len() != 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(value, 16).ok()
    };
    let group = GroupRef {
        host: text(header::HOST, found.host)?,
        group: text(header::GROUP, found.group)?,
        epoch: {
            let value = text(header::EPOCH, found.epoch)?;
            parse_epoch(value).ok_or_else(|| bad(header::EPOCH, value, "16 hex digits"))?
        },
    };
    let seq = number(header::SEQ, found.seq)?;
    match text(header::KIND, found.kind)? {
        "line" => Ok(AgentRecord::Line {
            group,
            seq,
            file: text(header::FILE, found.file)?,
            line: payload,
        }),
        "heartbeat" => {
            let value = text(header::AT, found.at)?;
            let at_ms = value
                .parse()
                .map_err(|_| bad(header::AT, value, "milliseconds since the Unix epoch"))?;
            Ok(AgentRecord::Heartbeat { group, seq, at_ms })
        }
        other => Err(bad(header::KIND, other, "line or heartbeat")),
    }
}

#[test]
fn rev16b_decode_takes_and_refuses_exactly_what_the_text_decode_did() {
    let epochs: &[Option<&[u8]>] = &[
        None,
        Some(b""),
        Some(b"0123456789abcdef"),
        Some(b"0123456789ABCDEF"),
        Some(b"ffffffffffffffff"),
        Some(b"0000000000000000"),
        Some(b"+123456789abcdef"),
        Some(b"0x23456789abcdef"),
        Some(b"0123456789abcde"),
        Some(b"0123456789abcdef0"),
        Some(b" 123456789abcdef"),
        Some(b"0123456789abcdeg"),
        Some("0123456789abcdé".as_bytes()),
        Some(b"0123456789abcde\xff"),
        Some(b"0123456789abcd\xc3\xa9"),
        Some(b"\x00123456789abcdef"),
        Some(b"G123456789abcdef"),
        Some(b"`123456789abcdef"),
        Some(b"@123456789abcdef"),
    ];
    let seqs: &[Option<&[u8]>] = &[
        None,
        Some(b""),
        Some(b"0"),
        Some(b"007"),
        Some(b"42"),
        Some(b"+5"),
        Some(b"-0"),
        Some(b"-5"),
        Some(b" 5"),
        Some(b"5 "),
        Some(b"18446744073709551615"),
        Some(b"18446744073709551616"),
        Some(b"000000000000000000000000018446744073709551615"),
        Some(b"99999999999999999999999"),
        Some(b"1_000"),
        Some(b"0x10"),
        Some("\u{665}".as_bytes()),
        Some(b"5\xff"),
        Some(b"/"),
        Some(b":"),
    ];
    let kinds: &[Option<&[u8]>] = &[
        None,
        Some(b""),
        Some(b"line"),
        Some(b"heartbeat"),
        Some(b"LINE"),
        Some(b"line "),
        Some(b"line\0"),
        Some(b"lin\xff"),
        Some(b"beat"),
    ];
    let ats: &[Option<&[u8]>] = &[
        None,
        Some(b"1800000000000"),
        Some(b"+5"),
        Some(b"-5"),
        Some(b""),
    ];
    let files: &[Option<&[u8]>] = &[None, Some(b"1:2"), Some(b"\xff")];
    let mut compared = 0;
    for &epoch in epochs {
        for &seq in seqs {
            for &kind in kinds {
                for &at in ats {
                    for &file in files {
                        let mut headers: Vec<(&str, Option<&[u8]>)> = vec![
                            (header::VERSION, Some(VERSION.as_bytes())),
                            (header::HOST, Some(b"h")),
                            (header::GROUP, Some(b"g")),
                        ];
                        for (name, value) in [
                            (header::EPOCH, epoch),
                            (header::SEQ, seq),
                            (header::KIND, kind),
                            (header::AT, at),
                            (header::FILE, file),
                        ] {
                            if let Some(v) = value {
                                headers.push((name, Some(v)));
                            }
                        }
                        let new = decode(headers.iter().copied(), b"x");
                        let old = old_decode(&headers, b"x");
                        assert_eq!(format!("{new:?}"), format!("{old:?}"), "{headers:?}");
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(
        compared,
        epochs.len() * seqs.len() * kinds.len() * ats.len() * files.len()
    );
}
