//! Writing a sample line as nginx writes it: the "combined" format plus
//! `$request_time`, without allocating per line.

use super::spec::SampleLine;

/// Appends one nginx "combined" line with a trailing `$request_time`, including `'\n'`.
pub fn format_nginx_line(line: &SampleLine, out: &mut Vec<u8>) {
    let [a, b, c, d] = line.remote_addr;
    push_u64(out, u64::from(a));
    out.push(b'.');
    push_u64(out, u64::from(b));
    out.push(b'.');
    push_u64(out, u64::from(c));
    out.push(b'.');
    push_u64(out, u64::from(d));
    out.extend_from_slice(b" - - [");
    push_time_local(line.event_secs, out);
    out.extend_from_slice(b"] \"");
    out.extend_from_slice(line.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(line.path.as_bytes());
    out.push(b' ');
    out.extend_from_slice(line.protocol.as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(line.status));
    out.push(b' ');
    push_u64(out, line.body_bytes);
    out.extend_from_slice(b" \"");
    out.extend_from_slice(line.referer.as_bytes());
    out.extend_from_slice(b"\" \"");
    out.extend_from_slice(line.user_agent.as_bytes());
    out.extend_from_slice(b"\" ");
    let (secs, ms) = (line.request_time_ms / 1000, line.request_time_ms % 1000);
    push_u64(out, u64::from(secs));
    let digit = |v: u32| b'0' + (v % 10) as u8;
    out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'\n']);
}

/// `20/Nov/2026:10:00:01 +0000` (nginx `$time_local` in UTC).
pub(super) fn push_time_local(secs: i64, out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);
    let two = |v: i64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    out.extend_from_slice(&two(day));
    out.push(b'/');
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b'/');
    out.extend_from_slice(&two(year / 100));
    out.extend_from_slice(&two(year));
    for v in [sod / 3600, sod / 60 % 60, sod % 60] {
        out.push(b':');
        out.extend_from_slice(&two(v));
    }
    out.extend_from_slice(b" +0000");
}

/// Appends the decimal digits of `v`.
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::spec::SAMPLE_START_UNIX_SECS;
    use crate::sample::stream::{Rng, UAS};

    #[test]
    fn formats_a_combined_line() {
        let line = SampleLine {
            host: 0,
            event_secs: SAMPLE_START_UNIX_SECS + 1,
            remote_addr: [10, 0, 3, 7],
            method: "GET",
            path: "/api/users?id=42",
            protocol: "HTTP/1.1",
            status: 200,
            body_bytes: 5123,
            referer: "-",
            user_agent: UAS[0],
            request_time_ms: 42,
        };
        let mut out = Vec::new();
        format_nginx_line(&line, &mut out);
        let want =
            "10.0.3.7 - - [20/Nov/2026:10:00:01 +0000] \"GET /api/users?id=42 HTTP/1.1\" 200 5123 \
                    \"-\" \"Mozilla/5.0 (X11; Linux x86_64) tidemark-sample/1.0\" 0.042\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn time_local_matches_jiff() {
        let mut r = Rng(7);
        for _ in 0..2_000 {
            let secs = r.below(253_402_300_799) as i64; // up to 9999-12-31
            let mut out = Vec::new();
            push_time_local(secs, &mut out);
            let ts = jiff::Timestamp::from_second(secs).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                ts.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string()
            );
        }
    }
}
