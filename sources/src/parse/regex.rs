//! `format = "regex"`: fields are the named captures of `pattern`.
//!
//! The pattern is searched for anywhere in the line (anchor it with `^...$` to
//! require a whole-line match); no match is `FormatMismatch`. A capture that
//! did not take part in the match is a missing field.

use super::{BuildError, LineError, Span};
use ::regex::{CaptureLocations, Regex};

pub(crate) struct RegexParser {
    re: Regex,
    /// Reused on every line so matching does not allocate.
    locs: CaptureLocations,
    /// Capture group index of each requested name.
    groups: Vec<usize>,
}

impl RegexParser {
    pub(crate) fn new(pattern: &str, names: &[String]) -> Result<RegexParser, BuildError> {
        let re = Regex::new(pattern)?;
        let groups = names
            .iter()
            .map(|name| {
                re.capture_names()
                    .position(|c| c == Some(name.as_str()))
                    .ok_or_else(|| BuildError::UnknownField {
                        field: name.clone(),
                        format: "regex",
                        available: re.capture_names().flatten().collect::<Vec<_>>().join(", "),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(RegexParser {
            locs: re.capture_locations(),
            re,
            groups,
        })
    }

    pub(crate) fn parse(&mut self, text: &str, spans: &mut [Span]) -> Result<(), LineError> {
        self.re
            .captures_read(&mut self.locs, text)
            .ok_or(LineError::FormatMismatch)?;
        for (span, &g) in spans.iter_mut().zip(&self.groups) {
            if let Some((s, e)) = self.locs.get(g) {
                *span = Span::Line(s, e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures() {
        let names = ["ts".to_string(), "level".to_string(), "ms".to_string()];
        let mut p = RegexParser::new(
            r"^(?P<ts>\S+ \S+) \[(?P<level>\w+)\] .*?(?:took (?P<ms>\d+)ms)?$",
            &names,
        )
        .unwrap();
        let line = "2026-11-20 10:01:02,345 [WARN] slow query took 1532ms";
        let mut spans = [Span::Missing; 3];
        p.parse(line, &mut spans).unwrap();
        let got: Vec<_> = spans.iter().map(|s| s.resolve(line, "")).collect();
        assert_eq!(
            got,
            [Some("2026-11-20 10:01:02,345"), Some("WARN"), Some("1532")]
        );

        let line = "2026-11-20 10:01:02,345 [INFO] started";
        let mut spans = [Span::Missing; 3];
        p.parse(line, &mut spans).unwrap();
        assert_eq!(spans[2], Span::Missing);

        assert_eq!(
            p.parse("garbage", &mut spans),
            Err(LineError::FormatMismatch)
        );
    }

    #[test]
    fn build_errors() {
        let names = ["x".to_string()];
        assert!(matches!(
            RegexParser::new("(", &names),
            Err(BuildError::Regex(_))
        ));
        let e = RegexParser::new("(?P<y>.)", &names).err().unwrap();
        assert!(matches!(e, BuildError::UnknownField { .. }));
        assert!(e.to_string().contains("available: y"), "{e}");
    }
}
