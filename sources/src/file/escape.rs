//! Paths in log lines, escaped: a file name is chosen by whoever can create a file
//! in a watched folder, and a newline in it must not start a forged log line.

use std::fmt::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Displays a path with control characters (newline, carriage return, escape
/// sequences…), Unicode line separators and bidirectional overrides escaped as
/// `\n`, `\u{1b}`, and bytes that are not UTF-8 as `\xNN`; a backslash is
/// doubled so that the escaping is unambiguous. A plain path prints as itself.
///
/// Use it wherever a log line or an error message names a file:
/// `format!("{}: …", EscapedPath(&path))`.
#[derive(Debug, Clone, Copy)]
pub struct EscapedPath<'a>(pub &'a Path);

impl fmt::Display for EscapedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.as_os_str().as_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    f.write_str("\\\\")?;
                } else if needs_escape(c) {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn show(bytes: &[u8]) -> String {
        EscapedPath(Path::new(OsStr::from_bytes(bytes))).to_string()
    }

    #[test]
    fn plain_paths_print_as_themselves() {
        assert_eq!(
            show(b"/var/log/nginx/web-1/access.log"),
            "/var/log/nginx/web-1/access.log"
        );
        assert_eq!(show("/logs/café ünï.log".as_bytes()), "/logs/café ünï.log");
    }

    /// Regression (issue 10 §6): a newline in a file name forged log lines.
    #[test]
    fn a_newline_in_a_file_name_cannot_forge_a_log_line() {
        let shown = show(b"/logs/x\n2026-01-01T00:00:00Z  WARN forged\r\x1b[2K.log");
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\x1b'));
        assert_eq!(
            shown,
            "/logs/x\\n2026-01-01T00:00:00Z  WARN forged\\r\\u{1b}[2K.log"
        );
        assert_eq!(show(b"/logs/a\xffb\\n"), "/logs/a\\xffb\\\\n");
        assert_eq!(
            show("/logs/\u{202e}gol.exe".as_bytes()),
            "/logs/\\u{202e}gol.exe"
        );
        assert_eq!(show("/logs/a\u{2028}b".as_bytes()), "/logs/a\\u{2028}b");
    }
}
