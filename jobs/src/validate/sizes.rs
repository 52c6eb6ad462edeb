//! Byte sizes and rates in [source]: `read_chunk`, `max_line_bytes`,
//! `fingerprint_bytes`, `rate_limit`.

use toml::Spanned;

use super::diag::Report;
use crate::duration::{format_size, parse_size};

/// A size setting within `[min, max]`, or its default when absent.
pub fn size_setting(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Option<usize> {
    let default_text = format_size(default);
    let Some(v) = value else {
        return usize::try_from(default).ok();
    };
    match parse_size(v.get_ref()) {
        Ok(n) if n < min => {
            r.on(
                v,
                format!("{key} `{}` is too small", v.get_ref()),
                format!(
                    "use at least {}; the default is \"{default_text}\"",
                    format_size(min)
                ),
            );
            None
        }
        Ok(n) if n > max => {
            r.on(
                v,
                format!("{key} `{}` is too large", v.get_ref()),
                format!(
                    "use at most {}; the default is \"{default_text}\"",
                    format_size(max)
                ),
            );
            None
        }
        Ok(n) => usize::try_from(n).ok(),
        Err(e) => {
            r.on(v, format!("invalid {key} `{}`: {e}", v.get_ref()), None);
            None
        }
    }
}

/// `rate_limit = "5MiB/s"`: bytes per second, or `Some(None)` when absent.
pub fn rate_setting(r: &mut Report<'_>, value: Option<&Spanned<String>>) -> Option<Option<u64>> {
    let Some(v) = value else {
        return Some(None);
    };
    let hint = "write a size per second, e.g. rate_limit = \"5MiB/s\"".to_string();
    let Some(size) = v.get_ref().trim().strip_suffix("/s") else {
        r.on(v, format!("rate_limit `{}` has no `/s`", v.get_ref()), hint);
        return None;
    };
    match parse_size(size.trim()) {
        Ok(0) => {
            r.on(v, "rate_limit must be greater than 0", hint);
            None
        }
        Ok(n) => Some(Some(n)),
        Err(e) => {
            r.on(
                v,
                format!("invalid rate_limit `{}`: {e}", v.get_ref()),
                hint,
            );
            None
        }
    }
}
