//! A split run (-w >= 2) against the sequential read (-w 1) on inputs the split
//! oracle's generator does not reach: every stat and window must be the same.

mod common;

use common::{job_from, nginx_line, run_until_eof, write_file};
use tidemark_engine::series::ClosedWindow;
use tidemark_engine::stats::JobStats;

const T0: i64 = 1_795_168_800;

const JOB: &str = r#"
name = "split"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
split_from = "4KiB"
max_line_bytes = "256B"
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "last_bytes"
kind = "gauge"
field = "body_bytes_sent"
[[sink]]
kind = "stdout"
series = "all"
"#;

fn render(windows: &[ClosedWindow]) -> String {
    windows.iter().map(|w| format!("{w:?}\n")).collect()
}

/// Every stat but those that say how the input was read.
fn everything(s: &JobStats) -> String {
    let mut s = s.clone();
    s.split_segments = 0;
    s.split_rereads = 0;
    s.paced_turns = 0;
    // One discovery per worker, split or not.
    s.discovery_runs = 0;
    s.open_files.clear();
    s.sink_meters = Default::default();
    s.output_paused_ms = 0;
    s.output_pauses = 0;
    format!("{s:#?}")
}

fn compare(dir: &std::path::Path, job_text: &str) {
    let job = job_from(job_text, dir);
    let (want, base) = run_until_eof(&job, 1);
    for w in [2, 3] {
        let (got, stats) = run_until_eof(&job, w);
        assert!(stats.split_segments > 1, "-w {w}: not split");
        assert_eq!(render(&got), render(&want), "-w {w}: windows");
        assert_eq!(everything(&stats), everything(&base), "-w {w}: stats");
    }
}

fn seq_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| nginx_line(T0 + i as i64 / 4, "GET", 200, i as u64, 1))
        .collect()
}

/// All stats, not just the harness's selection, on plain ordered input.
#[test]
fn every_stat_matches_on_ordered_input() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("logs/big/access.log"),
        &seq_lines(3000),
        false,
    );
    write_file(
        &dir.path().join("logs/small/access.log"),
        &seq_lines(10),
        false,
    );
    compare(dir.path(), JOB);
}

fn write_bytes(path: &std::path::Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Lines far longer than max_line_bytes and than a segment, invalid UTF-8,
/// runs of malformed lines as long as a segment, CR-only line ends.
#[test]
fn giant_oversize_lines_invalid_utf8_and_garbage_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut data: Vec<u8> = Vec::new();
    for i in 0..3000usize {
        let t = T0 + i as i64 / 4;
        match i % 97 {
            5 => data.extend_from_slice(&vec![b'x'; 20_000]),
            6 => data.extend_from_slice(b"\xff\xfe bad utf8 \xc3\x28"),
            7 => {
                for _ in 0..80 {
                    data.extend_from_slice(b"garbage line\n");
                }
                continue;
            }
            8 => {
                let l = nginx_line(t, "GET", 200, 1, 1);
                data.extend_from_slice(l.trim_end().as_bytes());
                data.extend_from_slice(b"\r");
            }
            _ => {}
        }
        data.extend_from_slice(nginx_line(t, "GET", 200, i as u64, 1).as_bytes());
    }
    write_bytes(&dir.path().join("logs/big/access.log"), &data);
    compare(dir.path(), JOB);
}

/// A damaged gzip sibling (truncated) before the live file.
#[test]
fn a_damaged_gzip_sibling() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("logs/big");
    write_file(&h.join("access.log.1.gz"), &seq_lines(2000), true);
    let gz = std::fs::read(h.join("access.log.1.gz")).unwrap();
    std::fs::write(h.join("access.log.1.gz"), &gz[..gz.len() / 2]).unwrap();
    let live: Vec<String> = (0..3000)
        .map(|i| nginx_line(T0 + 600 + i / 4, "GET", 200, i as u64, 1))
        .collect();
    write_file(&h.join("access.log"), &live, false);
    compare(dir.path(), JOB);
}

/// Every few hundred lines a real jump of hours, a lone outlier, and a late
/// line: in two big groups side by side.
#[test]
fn two_split_groups_with_jumps_outliers_and_late_lines() {
    let dir = tempfile::tempdir().unwrap();
    for host in ["a", "b"] {
        let mut t = T0;
        let mut out = Vec::new();
        for i in 0..4000usize {
            t += (i % 3 == 0) as i64;
            let mut at = t;
            match i % 211 {
                0 => {
                    t += 7200;
                    at = t
                }
                50 => at = t + 9000,
                51 => at = t + 9000,
                100 => at = t - 60,
                _ => {}
            }
            out.push(nginx_line(at, ["GET", "POST"][i % 2], 200, i as u64, 1));
        }
        write_file(
            &dir.path().join(format!("logs/{host}/access.log")),
            &out,
            false,
        );
    }
    compare(dir.path(), JOB);
}

/// One big file reached by two include paths (a hard link): read once, by
/// the group that found it first, whatever the workers.
#[test]
fn one_file_reached_by_two_paths() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("logs/a/access.log"),
        &seq_lines(3000),
        false,
    );
    std::fs::create_dir_all(dir.path().join("logs/b")).unwrap();
    std::fs::hard_link(
        dir.path().join("logs/a/access.log"),
        dir.path().join("logs/b/access.log"),
    )
    .unwrap();
    compare(dir.path(), JOB);
}

/// The same through a symlinked host folder.
#[test]
fn one_file_reached_through_a_symlinked_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("logs/a/access.log"),
        &seq_lines(3000),
        false,
    );
    std::os::unix::fs::symlink(dir.path().join("logs/a"), dir.path().join("logs/b")).unwrap();
    compare(dir.path(), JOB);
}

/// A multi-member gzip sibling (`cat a.gz b.gz`), as logrotate's delaycompress
/// plus an appended rotation can leave.
#[test]
fn a_multi_member_gzip_sibling() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("logs/big");
    write_file(&h.join("p1.gz"), &seq_lines(1000), true);
    let later: Vec<String> = (0..1000)
        .map(|i| nginx_line(T0 + 250 + i / 4, "GET", 200, i as u64, 1))
        .collect();
    write_file(&h.join("p2.gz"), &later, true);
    let mut gz = std::fs::read(h.join("p1.gz")).unwrap();
    gz.extend(std::fs::read(h.join("p2.gz")).unwrap());
    std::fs::remove_file(h.join("p1.gz")).unwrap();
    std::fs::remove_file(h.join("p2.gz")).unwrap();
    std::fs::write(h.join("access.log.1.gz"), gz).unwrap();
    let live: Vec<String> = (0..3000)
        .map(|i| nginx_line(T0 + 600 + i / 4, "GET", 200, i as u64, 1))
        .collect();
    write_file(&h.join("access.log"), &live, false);
    compare(dir.path(), JOB);
}

/// Lines of every length around max_line_bytes (256), with LF and CRLF ends,
/// and an empty live file after a big rotated sibling.
#[test]
fn line_lengths_around_the_limit_and_an_empty_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for i in 0..3000usize {
        let l = nginx_line(T0 + i as i64 / 4, "GET", 200, i as u64, 1);
        let body = l.trim_end_matches('\n');
        let crlf = i % 2 == 1;
        // Total length with its line end: 250..=262.
        let want = 250 + (i / 2) % 13;
        let end = if crlf { "\r\n" } else { "\n" };
        let pad = want.saturating_sub(body.len() + end.len());
        // Padding inside the user agent keeps the line parseable.
        let padded = body.replacen("\"test\"", &format!("\"test{}\"", "x".repeat(pad)), 1);
        out.push(format!("{padded}{end}"));
    }
    let h = dir.path().join("logs/big");
    write_file(&h.join("access.log.1"), &out, false);
    write_file(&h.join("access.log"), &[], false);
    compare(dir.path(), JOB);
}

/// A window's series come from different segments (each segment holds one or
/// two statuses, the window five): the cut and the limited flags must be the
/// sequential read's.
#[test]
fn max_series_when_a_windows_series_come_from_several_segments() {
    for max_series in [2, 4, 6, 8] {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..3000usize)
            .map(|i| {
                let status = [500, 200, 404, 302, 201][(i / 50) % 5];
                let method = ["GET", "POST"][(i / 120) % 2];
                nginx_line(T0 + i as i64 / 4, method, status, i as u64, 1)
            })
            .collect();
        write_file(&dir.path().join("logs/big/access.log"), &lines, false);
        let job = JOB.replace(
            "[window]\n",
            &format!("[window]\nmax_series = {max_series}\n"),
        );
        compare(dir.path(), &job);
    }
}

/// Many small hosts beside the split one, some far ahead in time, some behind
/// and some overlapping it, with a rule summing over hosts.
#[test]
fn many_small_groups_beside_a_split_one() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("logs/big/access.log"),
        &seq_lines(4000),
        false,
    );
    for h in 0..40i64 {
        let off = (h % 5 - 2) * 400;
        let lines: Vec<String> = (0..30)
            .map(|i| nginx_line(T0 + off + i * 17, "GET", 200, i as u64, 1))
            .collect();
        write_file(
            &dir.path().join(format!("logs/h{h}/access.log")),
            &lines,
            false,
        );
    }
    let job = JOB.to_string() + "[[rule]]\nrecord = \"all:reqs\"\nexpr = \"sum(reqs)\"\n";
    compare(dir.path(), &job);
}

/// Two damaged gzip siblings of one split group (each one segment, possibly
/// read by different workers): both listed as unreadable, as the file group
/// lists them (a fix must merge per group: `JobStats::add` replaces a group's
/// list of unreadable files with the latest one).
#[test]
fn two_damaged_gzip_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("logs/big");
    for (name, off) in [("access.log.2.gz", 0i64), ("access.log.1.gz", 600)] {
        let lines: Vec<String> = (0..2000)
            .map(|i| nginx_line(T0 + off + i / 4, "GET", 200, i as u64, 1))
            .collect();
        write_file(&h.join(name), &lines, true);
        let gz = std::fs::read(h.join(name)).unwrap();
        std::fs::write(h.join(name), &gz[..gz.len() / 2]).unwrap();
    }
    let live: Vec<String> = (0..3000)
        .map(|i| nginx_line(T0 + 1200 + i / 4, "GET", 200, i as u64, 1))
        .collect();
    write_file(&h.join("access.log"), &live, false);
    let job = job_from(JOB, dir.path());
    let (_, base) = run_until_eof(&job, 1);
    assert_eq!(base.unreadable().len(), 2, "the sequential read lists both");
    compare(dir.path(), JOB);
}
