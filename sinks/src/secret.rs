//! Secret files (bearer tokens, passwords) of the HTTP sinks: read once when a
//! sink opens, checked then, so that a secret that can never be sent fails the
//! open with a hint instead of every request, retried forever.

use std::io::Read;
use std::path::Path;

use thiserror::Error;
use tidemark_sources::file::roots::AllowedRoots;

/// A token or password; a larger file is not one.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// What is wrong with a secret file. Never holds the secret itself.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("it is larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge,
    #[error("it is empty")]
    Empty,
    #[error("it holds more than one line")]
    MoreThanOneLine,
    #[error(
        "its byte {at} is not a visible ASCII character, which an HTTP header cannot carry \
         (a token is visible ASCII only; look for a stray space, tab, non-ASCII letter or \
         control character)"
    )]
    NotHeaderText { at: usize },
}

/// The secret in the file at `path`, inside `roots`: without a leading UTF-8
/// byte order mark (editors on Windows add one) and without one trailing
/// newline.
pub fn read_secret_file(roots: &AllowedRoots, path: &Path) -> Result<String, SecretError> {
    let file = roots.open(path)?;
    let mut text = String::new();
    file.take(MAX_SECRET_BYTES + 1).read_to_string(&mut text)?;
    secret_of(&text).map(str::to_string)
}

fn secret_of(text: &str) -> Result<&str, SecretError> {
    if text.len() as u64 > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    // It goes into an HTTP header, where a line break would end it.
    if secret.contains(['\r', '\n']) {
        return Err(SecretError::MoreThanOneLine);
    }
    Ok(secret)
}

/// Checks that `token` can go as it is into an `Authorization: Bearer` header:
/// visible ASCII only. (A password is base64-encoded for basic auth and may
/// hold anything.)
pub fn check_bearer_token(token: &str) -> Result<(), SecretError> {
    match token.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        Some(at) => Err(SecretError::NotHeaderText { at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_and_one_newline_are_dropped_other_bytes_are_refused_in_a_token() {
        assert_eq!(secret_of("\u{feff}t0k3n\r\n").unwrap(), "t0k3n");
        assert_eq!(secret_of("t0k3n\n").unwrap(), "t0k3n");
        assert!(matches!(secret_of("\u{feff}\n"), Err(SecretError::Empty)));
        assert!(matches!(
            secret_of("a\nb\n"),
            Err(SecretError::MoreThanOneLine)
        ));
        assert!(check_bearer_token("abc.DEF-_~+/=").is_ok());
        for (bad, at) in [("tok\u{e9}n", 3), ("a b", 1), ("ab\t", 2), ("\u{feff}x", 0)] {
            match check_bearer_token(bad) {
                Err(SecretError::NotHeaderText { at: got }) => assert_eq!(got, at, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
