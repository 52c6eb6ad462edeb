//! The API token: where a cluster member and a client find it, and the one a
//! member creates in its state folder when it is given none.
//!
//! Both look, in order, at `--token-file FILE`, `$TIDEMARK_API_TOKEN`, then the
//! file [`STATE_TOKEN_FILE`] in the member's state folder. A member that finds none
//! creates that file ([`member_token`]): 32 bytes from the OS's random source, as
//! hex, mode 0600. It is written under a temporary name opened with `O_EXCL` (which
//! never follows a symlink) and then hard-linked into place, which fails rather than
//! replace anything there; so a crash never leaves a half-written token, and a link
//! planted at either name is never written through. A restart reuses the file. The
//! state folder's token is read without following symlinks, and refused when other
//! users could read it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The environment variable the CLI and the cluster read the token from.
pub const TOKEN_ENV: &str = "TIDEMARK_API_TOKEN";

/// The token file a member keeps in its state folder.
pub const STATE_TOKEN_FILE: &str = "api-token";

/// Random bytes in a created token (256 bits).
const TOKEN_BYTES: usize = 32;

/// Why no usable token was found or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {}: {source}\n  hint: check the path given to --token-file, or set ${env} instead", path.display())]
    Read {
        path: PathBuf,
        env: String,
        #[source]
        source: io::Error,
    },
    #[error("the API token file {} is empty\n  hint: write the token on its first line (e.g. `openssl rand -hex 32 > FILE`), or delete the file in a state folder so that the member creates a new one", path.display())]
    EmptyFile { path: PathBuf },
    #[error("the API token from {from} is empty or contains spaces or non-printable characters\n  hint: use printable ASCII without spaces, e.g. the output of `openssl rand -hex 32`")]
    Invalid { from: String },
    #[error("the API token file {} is not safe to use: {why}\n  hint: {hint}", path.display())]
    Unsafe {
        path: PathBuf,
        why: String,
        hint: &'static str,
    },
    #[error("cannot create the API token file {}: {source}\n  hint: the member needs write access to its state folder; or give it a token with --token-file FILE or ${TOKEN_ENV}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot get random bytes for the API token: {source}\n  hint: give the member a token with --token-file FILE or ${TOKEN_ENV}")]
    Random {
        #[source]
        source: getrandom::Error,
    },
    #[error("no API token: --token-file is not given, ${TOKEN_ENV} is not set, and the cluster's token file {} cannot be read: {source}\n  hint: run this as a user who can read that file (the cluster's user, or with sudo); if the cluster's state folder is elsewhere, pass --state-dir DIR or set TIDEMARK_STATE_DIR; or give --token-file FILE", path.display())]
    Missing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where a token came from, for the member's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token-file`.
    File(PathBuf),
    /// The environment variable.
    Env(String),
    /// The state folder's token file; `created` by this call.
    StateFolder { path: PathBuf, created: bool },
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(path) => write!(f, "the API token is read from {}", path.display()),
            TokenSource::Env(var) => write!(f, "the API token is read from ${var}"),
            TokenSource::StateFolder {
                path,
                created: true,
            } => write!(
                f,
                "created the API token in {} (mode 0600); `tidemark job` on this machine reads it from there",
                path.display()
            ),
            TokenSource::StateFolder {
                path,
                created: false,
            } => write!(
                f,
                "the API token is in {}; `tidemark job` on this machine reads it from there",
                path.display()
            ),
        }
    }
}

/// Loads the API token: from `file` when given (its content, trimmed), else from the
/// environment variable `env_var` (trimmed; unset or empty means no token).
pub fn load_token(file: Option<&Path>, env_var: &str) -> Result<Option<String>, TokenError> {
    Ok(given_token(file, env_var)?.map(|(token, _)| token))
}

/// The token a cluster member serves its API with: `file`, else `$env_var`, else
/// the state folder's token file, created when it does not exist.
pub fn member_token(
    file: Option<&Path>,
    env_var: &str,
    state_dir: &Path,
) -> Result<(String, TokenSource), TokenError> {
    if let Some(given) = given_token(file, env_var)? {
        return Ok(given);
    }
    let path = state_dir.join(STATE_TOKEN_FILE);
    // Twice at most: a token linked into place by another process meanwhile is read.
    for _ in 0..2 {
        match read_state_token(&path, Reader::Member) {
            Ok(token) => {
                let source = TokenSource::StateFolder {
                    path,
                    created: false,
                };
                return Ok((token, source));
            }
            Err(TokenError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(token) = create_state_token(state_dir, &path)? {
            let source = TokenSource::StateFolder {
                path,
                created: true,
            };
            return Ok((token, source));
        }
    }
    Err(TokenError::Create {
        path,
        source: io::Error::other("it appeared and vanished while being created"),
    })
}

/// The token a client sends: `file`, else `$env_var`, else the token file in the
/// cluster's state folder `state_dir` (never created).
pub fn client_token(
    file: Option<&Path>,
    env_var: &str,
    state_dir: &Path,
) -> Result<(String, TokenSource), TokenError> {
    if let Some(given) = given_token(file, env_var)? {
        return Ok(given);
    }
    let path = state_dir.join(STATE_TOKEN_FILE);
    match read_state_token(&path, Reader::Client) {
        Ok(token) => Ok((
            token,
            TokenSource::StateFolder {
                path,
                created: false,
            },
        )),
        Err(TokenError::Read { path, source, .. }) => Err(TokenError::Missing { path, source }),
        Err(e) => Err(e),
    }
}

fn given_token(
    file: Option<&Path>,
    env_var: &str,
) -> Result<Option<(String, TokenSource)>, TokenError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            env: env_var.to_string(),
            source,
        })?;
        let token = token_in(&text, path)?;
        warn_if_others_can_read(path);
        return Ok(Some((token, TokenSource::File(path.to_path_buf()))));
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
    Ok(Some((
        token.to_string(),
        TokenSource::Env(env_var.to_string()),
    )))
}

/// A `--token-file` is the user's own choice, so it is used; but a token every
/// user can read lets anyone drive the cluster, which the user should hear about.
fn warn_if_others_can_read(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    // World bits only: a group-readable token (e.g. 0640, group of the member's
    // user, as deploy/README.md sets up) is a deliberate share.
    let mode = meta.mode() & 0o777;
    if mode & 0o007 != 0 {
        tracing::warn!(
            "the API token file {} can be read by every user of this machine (mode {mode:04o}): anyone who reads it can drive the cluster\n  hint: `chmod 600 {}` (or 640 with a group that may use it)",
            path.display(),
            path.display()
        );
    }
}

/// The token in a file's text (trimmed, checked).
fn token_in(text: &str, path: &Path) -> Result<String, TokenError> {
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    check_token(token, || format!("file {}", path.display()))?;
    Ok(token.to_string())
}

/// A token must fit in an HTTP header as `Bearer <token>`: printable ASCII, no
/// spaces, not empty.
pub(crate) fn check_token(token: &str, from: impl FnOnce() -> String) -> Result<(), TokenError> {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(TokenError::Invalid { from: from() })
    }
}

/// Who reads the state folder's token: the member must own it; a client (e.g.
/// `sudo tidemark job`) may be another user who can read it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    Member,
    Client,
}

/// Reads the state folder's token without following a symlink; refuses anything
/// but a regular file only its owner can read (and, for the member, owns).
fn read_state_token(path: &Path, reader: Reader) -> Result<String, TokenError> {
    let unsafe_file = |why: String, hint| TokenError::Unsafe {
        path: path.to_path_buf(),
        why,
        hint,
    };
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_file(
                "it is a symbolic link".into(),
                "the member keeps its own token there: delete the link, and let the member create the file",
            ))
        }
        Err(source) => {
            return Err(TokenError::Read {
                path: path.to_path_buf(),
                env: TOKEN_ENV.to_string(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        env: TOKEN_ENV.to_string(),
        source,
    })?;
    if !meta.is_file() {
        return Err(unsafe_file(
            "it is not a regular file".into(),
            "delete it, and let the member create the file",
        ));
    }
    // Root reads any file whatever its mode: the owner is checked, not only the
    // mode, so a token another user planted is never served.
    let me = rustix::process::geteuid().as_raw();
    if reader == Reader::Member && meta.uid() != me {
        return Err(unsafe_file(
            format!(
                "it is owned by user id {}, not by the member's user (id {me})",
                meta.uid()
            ),
            "delete it so that the member creates a new token, or `chown` it to the member's user if you wrote it yourself",
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(
            format!("other users can read it (mode {mode:04o})"),
            "make it readable by its owner only (`chmod 600 FILE`), or delete it so that the member creates a new token",
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            env: TOKEN_ENV.to_string(),
            source,
        })?;
    token_in(&text, path)
}

/// Creates `path` with a new random token; `None` if another process created it
/// first (read it then).
fn create_state_token(state_dir: &Path, path: &Path) -> Result<Option<String>, TokenError> {
    let create_error = |source| TokenError::Create {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|source| TokenError::Random { source })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(state_dir).map_err(create_error)?;
    let tmp = state_dir.join(format!(".{STATE_TOKEN_FILE}.tmp"));
    // A leftover of a crash (or anything planted there) goes; removing a symlink
    // removes the link, not its target.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(create_error(e)),
        _ => {}
    }
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(create_error(e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            File::open(state_dir)
                .and_then(|d| d.sync_all())
                .map_err(create_error)?;
            Ok(Some(token))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(create_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A variable no test sets.
    const UNSET: &str = "TIDEMARK_TEST_TOKEN_UNSET_4242";

    #[test]
    fn token_from_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc123\n").unwrap();
        assert_eq!(
            load_token(Some(&path), UNSET).unwrap().as_deref(),
            Some("abc123")
        );

        std::fs::write(&path, "\n \n").unwrap();
        let e = load_token(Some(&path), UNSET).unwrap_err();
        assert!(matches!(e, TokenError::EmptyFile { .. }), "{e}");

        std::fs::write(&path, "two words").unwrap();
        let e = load_token(Some(&path), UNSET).unwrap_err();
        assert!(e.to_string().contains("spaces"), "{e}");

        let missing = dir.path().join("missing");
        let e = load_token(Some(&missing), UNSET).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("missing") && text.contains(UNSET), "{text}");

        assert_eq!(load_token(None, UNSET).unwrap(), None);
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

    #[test]
    fn a_member_without_a_token_creates_a_private_random_one_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (token, source) = member_token(None, UNSET, &state).unwrap();
        let path = state.join(STATE_TOKEN_FILE);
        assert_eq!(
            source,
            TokenSource::StateFolder {
                path: path.clone(),
                created: true
            }
        );
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!state.join(".api-token.tmp").exists());

        let (again, source) = member_token(None, UNSET, &state).unwrap();
        assert_eq!(again, token);
        assert!(matches!(
            source,
            TokenSource::StateFolder { created: false, .. }
        ));
        let (client, _) = client_token(None, UNSET, &state).unwrap();
        assert_eq!(client, token);

        // Another member's folder gets another token.
        let (other, _) = member_token(None, UNSET, &dir.path().join("other")).unwrap();
        assert_ne!(other, token);

        // A given token wins, and nothing is created for it.
        let given = dir.path().join("given");
        std::fs::write(&given, "given-token\n").unwrap();
        let fresh = dir.path().join("fresh");
        let (t, source) = member_token(Some(&given), UNSET, &fresh).unwrap();
        assert_eq!(
            (t.as_str(), source),
            ("given-token", TokenSource::File(given))
        );
        assert!(!fresh.join(STATE_TOKEN_FILE).exists());
    }

    #[test]
    fn a_planted_token_link_or_a_readable_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let path = state.join(STATE_TOKEN_FILE);
        let target = state.join("target");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let e = member_token(None, UNSET, state).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!target.exists(), "written through the link");

        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = member_token(None, UNSET, state).unwrap_err();
        assert!(e.to_string().contains("mode 0644"), "{e}");

        // A link planted at the temporary name is replaced, not followed.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, state.join(".api-token.tmp")).unwrap();
        member_token(None, UNSET, state).unwrap();
        assert!(!target.exists(), "written through the temporary link");
    }

    #[test]
    fn a_state_token_owned_by_another_user_is_refused_by_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let path = state.join(STATE_TOKEN_FILE);
        std::fs::write(&path, "planted-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Tests may run as root, who reads any file: hand it to `nobody`.
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 65534 { 0 } else { 65534 };
        if std::os::unix::fs::chown(&path, Some(other), None).is_err() {
            eprintln!("cannot chown as user {me}: the owner check is not exercised");
            return;
        }
        let e = member_token(None, UNSET, state).unwrap_err();
        assert!(
            matches!(e, TokenError::Unsafe { .. }) && e.to_string().contains("owned by user id"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "planted-token\n");
        // A client that can read it (root, say) still may: it only sends it.
        if me == 0 {
            let (t, _) = client_token(None, UNSET, state).unwrap();
            assert_eq!(t, "planted-token");
        }
    }

    #[test]
    fn a_client_without_any_token_gets_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let e = client_token(None, UNSET, dir.path()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TokenError::Missing { .. }), "{text}");
        assert!(
            text.contains(STATE_TOKEN_FILE)
                && text.contains("--state-dir")
                && text.contains("hint:"),
            "{text}"
        );
        assert!(!dir.path().join(STATE_TOKEN_FILE).exists());
    }
}
