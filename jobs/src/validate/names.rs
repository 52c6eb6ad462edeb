//! Name rules and "did you mean" suggestions.

/// Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A label name Prometheus keeps for itself (`__name__`, `__meta_*`, ...): a
/// series carrying one is refused, or clashes with its own name.
pub fn is_reserved_label(s: &str) -> bool {
    s.starts_with("__")
}

/// The hint for a reserved label name.
pub const RESERVED_LABEL_HINT: &str = "label names starting with `__` are reserved by Prometheus \
     (`__name__` is the record's name; a series with such a label is refused as an invalid sample); rename it";

/// Longest job name, in bytes (names are ASCII, so also characters). A job's
/// name names files and folders in the state folder (`STATE/NAME/`, a cluster's
/// `STATE/submitted/.NAME.toml.tmp`, ...), and a file name may have at most 255
/// bytes (`NAME_MAX`) on Linux filesystems: half of that leaves room for every
/// suffix tidemark adds, now and later.
pub const MAX_JOB_NAME_BYTES: usize = 128;

/// Job name: `[a-zA-Z_][a-zA-Z0-9_-]*`.
pub fn is_job_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut unlimited = u64::MAX;
    closest_within(word, candidates, &mut unlimited)
}

/// [`closest`], spending at most `budget` edit-distance cells (characters of
/// `word` times characters of a candidate) and taking what it spends off it;
/// `None` once it runs out. Candidates whose length alone puts them too far away
/// cost one cell.
pub fn closest_within<'a, I>(word: &str, candidates: I, budget: &mut u64) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_ascii_lowercase();
    let word_chars = word.chars().count();
    let limit = (word_chars / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if *budget == 0 {
            return None;
        }
        let c_chars = c.chars().count();
        if c == word || c_chars.abs_diff(word_chars) > limit {
            *budget -= 1;
            continue;
        }
        let cost = (word_chars as u64).max(1) * (c_chars as u64).max(1);
        if cost > *budget {
            *budget = 0;
            return None;
        }
        *budget -= cost;
        let d = edit_distance(&word_lower, &c.to_ascii_lowercase());
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `"did you mean `x`? "` or `""`.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map_or_else(String::new, |c| format!("did you mean `{c}`? "))
}

/// `a, b, c`.
pub fn list<'a, I>(items: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// Items listed in a hint at most: a list that grows with the job (metric names,
/// labels) would otherwise make every problem's hint as long as the job.
pub const LISTED_AT_MOST: usize = 20;

/// `a, b, c`, or `a, b, … (and 12 more)` past [`LISTED_AT_MOST`] items.
pub fn short_list<'a, I>(items: I) -> String
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    let total = items.len();
    short_list_of(items, total)
}

/// [`short_list`] of `total` items, reading only the ones it shows.
pub fn short_list_of<'a>(items: impl Iterator<Item = &'a str>, total: usize) -> String {
    let shown = list(items.take(LISTED_AT_MOST));
    if total > LISTED_AT_MOST {
        format!("{shown}, … (and {} more)", total - LISTED_AT_MOST)
    } else {
        shown
    }
}

/// `"a", "b" or "c"` for choices written as TOML strings.
pub fn quoted_choices(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_metric_name("http_requests_total"));
        assert!(is_metric_name("job:http_requests:sum1m"));
        assert!(is_metric_name("_x"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("1x"));
        assert!(!is_metric_name("http-requests"));
        assert!(is_label_name("status"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name("9"));
        assert!(is_job_name("nginx-access_2"));
        assert!(!is_job_name("-x"));
        assert!(!is_job_name("my job"));
    }

    #[test]
    fn distances_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
        let metrics = ["http_requests_total", "http_response_bytes_total"];
        assert_eq!(
            closest("http_request_total", metrics),
            Some("http_requests_total")
        );
        assert_eq!(closest("cpu_seconds", metrics), None);
        assert_eq!(closest("Counter", ["counter", "sum"]), Some("counter"));
        assert_eq!(did_you_mean("sumx", ["sum"]), "did you mean `sum`? ");
        assert_eq!(quoted_choices(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
        assert_eq!(quoted_choices(&["a"]), "\"a\"");
    }

    #[test]
    fn suggestions_stop_when_their_budget_is_spent() {
        let names = ["http_requests_total", "http_response_bytes_total"];
        let mut budget = u64::MAX;
        assert_eq!(
            closest_within("http_request_total", names, &mut budget),
            Some("http_requests_total")
        );
        let mut budget = 10;
        assert_eq!(
            closest_within("http_request_total", names, &mut budget),
            None
        );
        assert_eq!(budget, 0);
        // Candidates too different in length cost one cell and are never chosen.
        let mut budget = 100;
        assert_eq!(closest_within("ab", ["abcdefgh"], &mut budget), None);
        assert_eq!(budget, 99);
    }

    #[test]
    fn long_lists_are_cut_short() {
        let many: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        let shown = short_list(many.iter().map(String::as_str));
        assert!(shown.starts_with("m0, m1, "), "{shown}");
        assert!(shown.ends_with("m19, … (and 5 more)"), "{shown}");
        assert_eq!(short_list(["a", "b"]), "a, b");
    }
}
