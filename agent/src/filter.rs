//! `[filter]`: which lines the agent sends.
//!
//! A line left out takes no sequence number: the group's sequence numbers stay
//! consecutive over the lines sent, so a consumer never sees a filtered line as a
//! gap (a loss). Left-out lines are counted (`lines_filtered`).

use memchr::memmem::Finder;
use regex::bytes::Regex;

/// Keyword and regex includes and excludes. The default sends every line.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Finder<'static>>,
    include_regex: Vec<Regex>,
    exclude: Vec<Finder<'static>>,
    exclude_regex: Vec<Regex>,
}

impl Filter {
    /// Keywords (substrings) and regexes to include and to exclude.
    pub fn new(
        include: Vec<String>,
        include_regex: Vec<Regex>,
        exclude: Vec<String>,
        exclude_regex: Vec<Regex>,
    ) -> Filter {
        let finders = |words: Vec<String>| {
            words
                .into_iter()
                .map(|w| Finder::new(w.as_bytes()).into_owned())
                .collect()
        };
        Filter {
            include: finders(include),
            include_regex,
            exclude: finders(exclude),
            exclude_regex,
        }
    }

    /// Whether every line is sent (no check per line).
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.include_regex.is_empty()
            && self.exclude.is_empty()
            && self.exclude_regex.is_empty()
    }

    /// Whether `line` is sent: it matches an include (or there is none) and no
    /// exclude.
    pub fn keeps(&self, line: &[u8]) -> bool {
        let included = (self.include.is_empty() && self.include_regex.is_empty())
            || self.include.iter().any(|f| f.find(line).is_some())
            || self.include_regex.iter().any(|re| re.is_match(line));
        included
            && !self.exclude.iter().any(|f| f.find(line).is_some())
            && !self.exclude_regex.iter().any(|re| re.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> Regex {
        Regex::new(s).unwrap()
    }

    #[test]
    fn no_rule_keeps_everything() {
        let f = Filter::default();
        assert!(f.is_empty());
        assert!(f.keeps(b"anything") && f.keeps(b""));
    }

    #[test]
    fn includes_any_and_excludes_win() {
        let f = Filter::new(
            vec!["ERROR".into()],
            vec![re(r"status=5\d\d")],
            vec!["healthcheck".into()],
            vec![re(r"^DEBUG")],
        );
        assert!(f.keeps(b"x ERROR y"));
        assert!(f.keeps(b"status=503 path=/"));
        assert!(!f.keeps(b"status=200 INFO"));
        assert!(!f.keeps(b"ERROR in healthcheck"));
        assert!(!f.keeps(b"DEBUG ERROR"));
        // Bytes that are not UTF-8 are matched as they are.
        assert!(f.keeps(b"\xff\xfeERROR"));
    }

    #[test]
    fn excludes_alone_keep_the_rest() {
        let f = Filter::new(vec![], vec![], vec!["GET /health".into()], vec![]);
        assert!(f.keeps(b"GET /index"));
        assert!(!f.keeps(b"GET /health HTTP/1.1"));
    }
}
