//! Bearer-token authentication for the control API.
//!
//! Every request except `GET /healthz` must carry `Authorization: Bearer <token>`;
//! anything else gets 401, on every address, loopback included: any local user can
//! connect to 127.0.0.1. There is no way to serve the API without a token
//! ([`Auth`] always holds one); [`crate::token`] finds or creates it.

use std::fmt;

use crate::token::{check_token, TokenError};

/// How the server checks requests: they must send `Authorization: Bearer <token>`
/// with this token.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    token: String,
}

impl fmt::Debug for Auth {
    // Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auth(<redacted>)")
    }
}

impl Auth {
    /// Requests must send `token`: printable ASCII without spaces, not empty.
    pub fn bearer(token: impl Into<String>) -> Result<Auth, TokenError> {
        let token = token.into();
        check_token(&token, || "the token given to the server".to_string())?;
        Ok(Auth { token })
    }

    /// True when the value of an `Authorization` header grants access.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        authorization
            .and_then(bearer_credentials)
            .is_some_and(|given| constant_time_eq(given, self.token.as_bytes()))
    }
}

/// The credentials of `Bearer <credentials>` (scheme matched case-insensitively).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Compares `given` with `expected` in time that depends only on `expected`'s length.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(!e) ^ e;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_checked_exactly() {
        let auth = Auth::bearer("s3cret").unwrap();
        assert!(auth.allows(Some(b"Bearer s3cret")));
        assert!(auth.allows(Some(b"bearer s3cret")));
        assert!(auth.allows(Some(b"Bearer  s3cret ")));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some(b"Bearer s3cre")));
        assert!(!auth.allows(Some(b"Bearer s3cret2")));
        assert!(!auth.allows(Some(b"Bearer ")));
        assert!(!auth.allows(Some(b"Basic s3cret")));
        assert!(!auth.allows(Some(b"Bearers3cret")));
        assert!(!auth.allows(Some(b"s3cret")));
        assert_eq!(format!("{auth:?}"), "Auth(<redacted>)");
    }

    #[test]
    fn an_empty_or_unsendable_token_cannot_make_an_open_api() {
        // An empty token would let `Authorization: Bearer ` in.
        for bad in ["", "two words", "tab\there"] {
            assert!(Auth::bearer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn constant_time_eq_matches_slice_eq() {
        for (a, b) in [
            ("", ""),
            ("a", ""),
            ("", "a"),
            ("ab", "ab"),
            ("ab", "ac"),
            ("abc", "ab"),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} vs {b:?}"
            );
        }
    }
}
