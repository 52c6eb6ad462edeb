//! Bearer-token authentication for the control API.
//!
//! With [`Auth::Bearer`], every request except `GET /healthz` must carry
//! `Authorization: Bearer <token>`; anything else gets 401. A cluster must not serve
//! the API on a non-loopback address without a token ([`require_token_for`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The environment variable the CLI and the cluster read the token from by default.
pub const TOKEN_ENV: &str = "TIDEMARK_API_TOKEN";

/// How the server checks requests.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Anyone who can connect may use the API (loopback only).
    None,
    /// Requests must send `Authorization: Bearer <token>` with this token.
    Bearer(String),
}

impl fmt::Debug for Auth {
    // Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(<redacted>)"),
        }
    }
}

impl Auth {
    /// `Auth::Bearer(token)` when there is a token, else `Auth::None`.
    pub fn from_token(token: Option<String>) -> Auth {
        token.map_or(Auth::None, Auth::Bearer)
    }

    /// True when the value of an `Authorization` header grants access.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        match self {
            Auth::None => true,
            Auth::Bearer(token) => authorization
                .and_then(bearer_credentials)
                .is_some_and(|given| constant_time_eq(given, token.as_bytes())),
        }
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

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {}: {source}\n  hint: check the path given to the token-file option, or set ${env} instead", path.display())]
    Read {
        path: PathBuf,
        env: String,
        #[source]
        source: io::Error,
    },
    #[error("the API token file {} is empty\n  hint: write the token on its first line (e.g. `openssl rand -hex 32 > FILE`)", path.display())]
    EmptyFile { path: PathBuf },
    #[error("the API token from {from} contains spaces or non-printable characters\n  hint: use printable ASCII without spaces, e.g. the output of `openssl rand -hex 32`")]
    Invalid { from: String },
}

/// Loads the API token: from `file` when given (its content, trimmed), else from the
/// environment variable `env_var` (trimmed; unset or empty means no token).
pub fn load_token(file: Option<&Path>, env_var: &str) -> Result<Option<String>, TokenError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            env: env_var.to_string(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        check_token(token, || format!("file {}", path.display()))?;
        return Ok(Some(token.to_string()));
    }
    let Some(value) = std::env::var_os(env_var) else {
        return Ok(None);
    };
    let value = value.into_string().map_err(|_| TokenError::Invalid {
        from: format!("${env_var}"),
    })?;
    let token = value.trim();
    if token.is_empty() {
        return Ok(None);
    }
    check_token(token, || format!("${env_var}"))?;
    Ok(Some(token.to_string()))
}

/// A token must fit in an HTTP header as `Bearer <token>`: printable ASCII, no spaces.
fn check_token(token: &str, from: impl FnOnce() -> String) -> Result<(), TokenError> {
    if token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(TokenError::Invalid { from: from() })
    }
}

/// True when serving the API on `addr` requires a token: any address other than a
/// loopback one (`127.0.0.0/8`, `::1`, `::ffff:127.x.y.z`). The unspecified
/// addresses (`0.0.0.0`, `::`) accept remote connections, so they require one too.
pub fn require_token_for(addr: &SocketAddr) -> bool {
    let loopback = match addr.ip() {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    };
    !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_checked_exactly() {
        let auth = Auth::Bearer("s3cret".into());
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
        assert!(Auth::None.allows(None));
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

    #[test]
    fn loopback_needs_no_token() {
        let no = [
            "127.0.0.1:7070",
            "127.1.2.3:1",
            "[::1]:7070",
            "[::ffff:127.0.0.1]:7070",
        ];
        for a in no {
            assert!(!require_token_for(&a.parse().unwrap()), "{a}");
        }
        let yes = [
            "0.0.0.0:7070",
            "[::]:7070",
            "10.0.0.5:7070",
            "[2001:db8::1]:80",
        ];
        for a in yes {
            assert!(require_token_for(&a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn token_from_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc123\n").unwrap();
        let env = "TIDEMARK_TEST_TOKEN_UNSET_4242";
        assert_eq!(
            load_token(Some(&path), env).unwrap().as_deref(),
            Some("abc123")
        );

        std::fs::write(&path, "\n \n").unwrap();
        let e = load_token(Some(&path), env).unwrap_err();
        assert!(matches!(e, TokenError::EmptyFile { .. }), "{e}");

        std::fs::write(&path, "two words").unwrap();
        let e = load_token(Some(&path), env).unwrap_err();
        assert!(e.to_string().contains("spaces"), "{e}");

        let missing = dir.path().join("missing");
        let e = load_token(Some(&missing), env).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("missing") && text.contains(env), "{text}");

        assert_eq!(load_token(None, env).unwrap(), None);
    }

    #[test]
    fn token_from_env_is_trimmed_and_empty_means_none() {
        // A variable no other test touches.
        let env = "TIDEMARK_TEST_TOKEN_ENV_777";
        std::env::set_var(env, " tok-1\n");
        assert_eq!(load_token(None, env).unwrap().as_deref(), Some("tok-1"));
        std::env::set_var(env, "  ");
        assert_eq!(load_token(None, env).unwrap(), None);
        std::env::set_var(env, "a\tb");
        let e = load_token(None, env).unwrap_err();
        assert!(e.to_string().contains(env), "{e}");
        std::env::remove_var(env);
    }
}
