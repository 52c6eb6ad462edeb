//! `${NAME}` in paths and in the fixed host label: the environment a job is
//! expanded from, and the expansion itself.
//!
//! `include`, `exclude`, `archive`, a jsonl sink's `path` and the fixed host label
//! (`[source] host = { value = "..." }`) may use `${NAME}`; it is replaced by the
//! value of the environment variable `NAME` of the process that validates the job
//! (in a cluster every member validates, so each expands from its own environment:
//! `value = "${HOST_LABEL}"` labels each member's lines with its own host). `$$` is a
//! literal `$`. Any other `$` is an error, so `$LOG_ROOT` cannot be silently taken
//! as text. Values are inserted as they are and not expanded again; glob characters
//! in a value act as glob characters (in a path). A variable that is unset, set but
//! empty, or not UTF-8 is an error naming the setting it is used in. (`path_regex`
//! and `field` are not expanded: `$` is part of regex syntax.)
//!
//! Nothing reads `std::env` except [`Env::process`], so tests (and callers that want
//! a fixed environment) pass their own [`Env`].
//!
//! A cluster expands a submitted job only from the variables it allows
//! (`--job-env NAME`, see [`Env::allowing`]): the member's environment holds
//! secrets a job must not copy into its output (`host = { value = "${SECRET}" }`).
//! Any other name is an error naming it and the flag that allows it.
//!
//! Kafka client options may use `${NAME}` too (`"sasl.password" = "${KAFKA_PASSWORD}"`),
//! so a password need not sit in a job file. A cluster's secret variables
//! (`--job-secret-env NAME`, [`Env::allowing_with_secrets`]) expand only there, in
//! the options whose value is a secret ([`Place::SecretOption`], decided by the
//! kafka options module): anywhere else (a path, the host label, another option)
//! a job could copy the value into its output, a status or an error.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// Where `${NAME}` is looked up.
#[derive(Clone)]
pub struct Env(Source);

type LookupFn = dyn Fn(&str) -> Option<String> + Send + Sync;

#[derive(Clone)]
enum Source {
    Process,
    Vars(Arc<HashMap<String, String>>),
    Fn(Arc<LookupFn>),
    /// Only these names, looked up in the inner environment.
    Allowing {
        /// Usable anywhere.
        names: Arc<BTreeSet<String>>,
        /// Usable only in a secret option ([`Place::SecretOption`]).
        secrets: Arc<BTreeSet<String>>,
        inner: Box<Env>,
    },
}

/// Where a `${NAME}` is used, which decides what a cluster lets it expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A path, the host label, a kafka option whose value is not a secret: the
    /// value may end up in the job's output, its status or an error.
    Text,
    /// The value of a kafka option that holds a secret (`sasl.password`, …):
    /// librdkafka keeps it to itself,
    /// and tidemark never shows it.
    SecretOption,
}

/// The result of looking a name up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Unset,
    NotUnicode,
    /// The environment does not let jobs use this name (see [`Env::allowing`]).
    NotAllowed,
    /// A secret variable used outside a secret option.
    SecretOnly,
    Value(String),
}

impl Env {
    /// The environment of this process (`std::env::var_os`).
    pub fn process() -> Self {
        Env(Source::Process)
    }

    /// An environment where nothing is set.
    pub fn empty() -> Self {
        Self::from_vars(std::iter::empty::<(String, String)>())
    }

    /// Exactly these variables.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env(Source::Vars(Arc::new(map)))
    }

    /// Variables answered by `lookup` (`None` = not set).
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Env(Source::Fn(Arc::new(lookup)))
    }

    /// Only the variables in `names`, from `self`; looking up any other is an
    /// error that names it ([`ExpandErrorKind::NotAllowed`]). What a cluster member
    /// expands submitted jobs from: `Env::process().allowing(["LOG_ROOT"])`.
    pub fn allowing<S: Into<String>>(self, names: impl IntoIterator<Item = S>) -> Self {
        self.allowing_with_secrets(names, std::iter::empty::<String>())
    }

    /// Like [`Env::allowing`], plus `secrets`: variables a job may use only as
    /// the value of a secret kafka option ([`Place::SecretOption`]); anywhere
    /// else they are an error that names the variable, never its value
    /// ([`ExpandErrorKind::SecretOnly`]). What a cluster member started with
    /// `--job-secret-env NAME` expands submitted jobs from.
    pub fn allowing_with_secrets<S: Into<String>, T: Into<String>>(
        self,
        names: impl IntoIterator<Item = S>,
        secrets: impl IntoIterator<Item = T>,
    ) -> Self {
        Env(Source::Allowing {
            names: Arc::new(names.into_iter().map(Into::into).collect()),
            secrets: Arc::new(secrets.into_iter().map(Into::into).collect()),
            inner: Box::new(self),
        })
    }

    /// The value of `name`, or `None` when it is not set (or, for the process
    /// environment, not UTF-8, or not allowed).
    pub fn get(&self, name: &str) -> Option<String> {
        match self.lookup(name, Place::Text) {
            Lookup::Value(v) => Some(v),
            Lookup::Unset | Lookup::NotUnicode | Lookup::NotAllowed | Lookup::SecretOnly => None,
        }
    }

    /// The values of the secret variables ([`Env::allowing_with_secrets`]) that are
    /// set, for scrubbing them out of what is shown ([`crate::kafka_options::SecretScrubber`]).
    pub fn secret_values(&self) -> Vec<String> {
        match &self.0 {
            Source::Allowing { secrets, inner, .. } => secrets
                .iter()
                .filter_map(|n| match inner.lookup(n, Place::SecretOption) {
                    Lookup::Value(v) => Some(v),
                    _ => None,
                })
                .collect(),
            Source::Process | Source::Vars(_) | Source::Fn(_) => Vec::new(),
        }
    }

    pub(crate) fn lookup(&self, name: &str, place: Place) -> Lookup {
        let value = match &self.0 {
            Source::Allowing {
                names,
                secrets,
                inner,
            } => {
                return if names.contains(name) {
                    inner.lookup(name, place)
                } else if !secrets.contains(name) {
                    Lookup::NotAllowed
                } else if place == Place::SecretOption {
                    inner.lookup(name, place)
                } else {
                    Lookup::SecretOnly
                };
            }
            Source::Process => match std::env::var_os(name) {
                None => None,
                Some(v) => match v.into_string() {
                    Ok(v) => Some(v),
                    Err(_) => return Lookup::NotUnicode,
                },
            },
            Source::Vars(map) => map.get(name).cloned(),
            Source::Fn(f) => f(name),
        };
        value.map_or(Lookup::Unset, Lookup::Value)
    }
}

/// The process environment.
impl Default for Env {
    fn default() -> Self {
        Env::process()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Process => f.write_str("Env::process()"),
            Source::Vars(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_tuple("Env::from_vars").field(&names).finish()
            }
            Source::Fn(_) => f.write_str("Env::from_fn(..)"),
            Source::Allowing {
                names,
                secrets,
                inner,
            } => f
                .debug_struct("Env::allowing")
                .field("names", names)
                .field("secrets", secrets)
                .field("from", inner)
                .finish(),
        }
    }
}

/// What is wrong with one `$` in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandErrorKind {
    /// `${` without a closing `}`.
    Unterminated,
    /// `${}`.
    EmptyName,
    /// `${...}` whose contents are not `[A-Za-z_][A-Za-z0-9_]*`.
    BadName(String),
    /// A `$` followed by neither `{` nor `$`; holds the name-like text after it, if any.
    LoneDollar(String),
    /// The variable is not set.
    Unset(String),
    /// The variable is set to the empty string.
    Empty(String),
    /// The variable's value is not UTF-8.
    NotUnicode(String),
    /// The environment does not let jobs use this variable (a cluster member
    /// started without `--job-env NAME`).
    NotAllowed(String),
    /// A secret variable (`--job-secret-env NAME`) outside a secret kafka option.
    SecretOnly(String),
}

/// One problem, at byte `offset` of the unexpanded text (where its `$` is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub offset: usize,
    pub kind: ExpandErrorKind,
}

/// Expanded text, with a map back to the unexpanded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    /// (start in `text`, start in the unexpanded text, copied byte for byte?)
    pieces: Vec<(usize, usize, bool)>,
}

impl Expanded {
    /// The byte of the unexpanded text that byte `offset` of [`Expanded::text`] came
    /// from: itself for copied text, the `$` of `${NAME}` for a variable's value.
    pub fn source_offset(&self, offset: usize) -> usize {
        let i = self.pieces.partition_point(|&(out, _, _)| out <= offset);
        match i.checked_sub(1).map(|i| self.pieces[i]) {
            Some((out, raw, true)) => raw + (offset - out),
            Some((_, raw, false)) => raw,
            None => offset,
        }
    }
}

/// Whether `name` is a variable name `${...}` accepts: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `${NAME}` and `$$` in `text`; returns every problem (in text order) when
/// there is any.
pub fn expand(text: &str, env: &Env) -> Result<Expanded, Vec<ExpandError>> {
    expand_in(text, env, Place::Text)
}

/// [`expand`], for a use at `place`: only a [`Place::SecretOption`] may use a
/// cluster's secret variables.
pub fn expand_in(text: &str, env: &Env, place: Place) -> Result<Expanded, Vec<ExpandError>> {
    let mut out = Expanded {
        text: String::with_capacity(text.len()),
        pieces: Vec::new(),
    };
    let mut errors = Vec::new();
    let copy = |out: &mut Expanded, from: usize, to: usize| {
        if from < to {
            out.pieces.push((out.text.len(), from, true));
            out.text.push_str(&text[from..to]);
        }
    };
    let mut literal = 0; // start of text not yet copied
    let mut i = 0;
    while let Some(found) = text[i..].find('$') {
        let at = i + found;
        copy(&mut out, literal, at);
        let rest = &text[at + 1..];
        if rest.starts_with('$') {
            copy(&mut out, at + 1, at + 2);
            i = at + 2;
        } else if let Some(body) = rest.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                errors.push(ExpandError {
                    offset: at,
                    kind: ExpandErrorKind::Unterminated,
                });
                literal = text.len();
                break;
            };
            let name = &body[..close];
            i = at + 2 + close + 1;
            let kind = if name.is_empty() {
                Some(ExpandErrorKind::EmptyName)
            } else if !is_var_name(name) {
                Some(ExpandErrorKind::BadName(name.to_string()))
            } else {
                match env.lookup(name, place) {
                    Lookup::Unset => Some(ExpandErrorKind::Unset(name.to_string())),
                    Lookup::SecretOnly => Some(ExpandErrorKind::SecretOnly(name.to_string())),
                    Lookup::NotUnicode => Some(ExpandErrorKind::NotUnicode(name.to_string())),
                    Lookup::NotAllowed => Some(ExpandErrorKind::NotAllowed(name.to_string())),
                    Lookup::Value(v) if v.is_empty() => {
                        Some(ExpandErrorKind::Empty(name.to_string()))
                    }
                    Lookup::Value(v) => {
                        out.pieces.push((out.text.len(), at, false));
                        out.text.push_str(&v);
                        None
                    }
                }
            };
            if let Some(kind) = kind {
                errors.push(ExpandError { offset: at, kind });
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            errors.push(ExpandError {
                offset: at,
                kind: ExpandErrorKind::LoneDollar(word),
            });
            i = at + 1;
        }
        literal = i;
    }
    copy(&mut out, literal, text.len());
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl ExpandError {
    /// A one-line message and a hint; `what` names the setting, e.g. "include".
    pub fn describe(&self, what: &str) -> (String, String) {
        self.describe_quoting(what, true)
    }

    /// As [`ExpandError::describe`], for a value that is a secret (a password
    /// written in the file, `pa$word`): the text after the `$` is a piece of it, so
    /// it is never quoted.
    pub fn describe_secret(&self, what: &str) -> (String, String) {
        self.describe_quoting(what, false)
    }

    fn describe_quoting(&self, what: &str, quote: bool) -> (String, String) {
        let or_literal = "or `$$` for a literal `$`";
        match &self.kind {
            ExpandErrorKind::BadName(_) if !quote => (
                format!("a `${{...}}` in {what} is not a valid environment variable reference (the value is a secret: not shown)"),
                format!("a name is letters, digits and `_`, not starting with a digit, e.g. `${{KAFKA_PASSWORD}}`; {or_literal}"),
            ),
            ExpandErrorKind::LoneDollar(_) if !quote => (
                format!("`$` in {what} must start `${{NAME}}` or be written `$$` (the value is a secret: not shown)"),
                format!("write `${{NAME}}` to use an environment variable, {or_literal}"),
            ),
            ExpandErrorKind::Unterminated => (
                format!("`${{` in {what} is not closed with `}}`"),
                format!("write `${{NAME}}` to use an environment variable, {or_literal}"),
            ),
            ExpandErrorKind::EmptyName => (
                format!("`${{}}` in {what} names no environment variable"),
                format!("write the variable's name between the braces, e.g. `${{LOG_ROOT}}`, {or_literal}"),
            ),
            ExpandErrorKind::BadName(name) => (
                format!("`${{{name}}}` in {what} is not a valid environment variable reference"),
                format!("a name is letters, digits and `_`, not starting with a digit, e.g. `${{LOG_ROOT}}` (defaults such as `${{NAME:-x}}` are not supported); {or_literal}"),
            ),
            ExpandErrorKind::LoneDollar(word) => {
                let example = if is_var_name(word) { word.as_str() } else { "NAME" };
                (
                    format!("`$` in {what} must start `${{NAME}}` or be written `$$`"),
                    format!("write `${{{example}}}` to use an environment variable, {or_literal}"),
                )
            }
            ExpandErrorKind::Unset(name) => (
                format!("environment variable `{name}` (used in {what}) is not set"),
                format!("set {name} in the environment tidemark runs in (in a cluster: of every member, since each expands paths from its own environment), or write the path out"),
            ),
            ExpandErrorKind::Empty(name) => (
                format!("environment variable `{name}` (used in {what}) is set but empty"),
                format!("set {name} to a non-empty value (in a cluster: on every member), or write the path out"),
            ),
            ExpandErrorKind::NotUnicode(name) => (
                format!("environment variable `{name}` (used in {what}) is not valid UTF-8"),
                format!("set {name} to UTF-8 text, or write the path out"),
            ),
            ExpandErrorKind::NotAllowed(name) => (
                format!("environment variable `{name}` (used in {what}) is not one this cluster lets jobs use"),
                format!("a cluster expands only the variables its members were started with `--job-env NAME` for: start every member with `--job-env {name}`, or write the value out"),
            ),
            ExpandErrorKind::SecretOnly(name) => (
                format!("environment variable `{name}` (used in {what}) is a secret of this cluster: a job may use it only as the value of a kafka password option"),
                format!("use it as e.g. \"sasl.password\" = \"${{{name}}}\" in [source.options] or a kafka sink's options (the options whose value is a password or a key: docs/kafka.md, Secrets); anywhere else its value could reach the job's output, status or errors"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExpandErrorKind::*;

    fn env() -> Env {
        Env::from_vars([
            ("LOG_ROOT", "/srv/logs"),
            ("_X1", "x"),
            ("EMPTY", ""),
            ("UNI", "données"),
        ])
    }

    fn ok(text: &str) -> String {
        match expand(text, &env()) {
            Ok(e) => e.text,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn err(text: &str) -> Vec<(usize, ExpandErrorKind)> {
        match expand(text, &env()) {
            Ok(e) => panic!("{text} expanded to {}", e.text),
            Err(e) => e.into_iter().map(|e| (e.offset, e.kind)).collect(),
        }
    }

    #[test]
    fn expands_variables_and_dollar_escapes() {
        assert_eq!(ok("/var/log/*.log"), "/var/log/*.log");
        assert_eq!(ok(""), "");
        assert_eq!(ok("${LOG_ROOT}/nginx/*.log"), "/srv/logs/nginx/*.log");
        assert_eq!(ok("a${_X1}b${_X1}"), "axbx");
        assert_eq!(ok("${LOG_ROOT}${_X1}"), "/srv/logsx");
        assert_eq!(ok("/a/$$/b"), "/a/$/b");
        assert_eq!(ok("$${LOG_ROOT}"), "${LOG_ROOT}");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("é/${UNI}/ü"), "é/données/ü");
        // A value is not expanded again.
        let env = Env::from_vars([("A", "${B}"), ("B", "no")]);
        assert_eq!(expand("${A}", &env).unwrap().text, "${B}");
    }

    #[test]
    fn malformed_references_are_errors_at_their_dollar() {
        assert_eq!(err("/a/${"), [(3, Unterminated)]);
        assert_eq!(err("/a/${LOG_ROOT/x"), [(3, Unterminated)]);
        assert_eq!(err("${}/x"), [(0, EmptyName)]);
        assert_eq!(err("/x/${1X}"), [(3, BadName("1X".into()))]);
        assert_eq!(err("${A-B}"), [(0, BadName("A-B".into()))]);
        assert_eq!(err("${NAME:-x}"), [(0, BadName("NAME:-x".into()))]);
        assert_eq!(err("${ LOG_ROOT}"), [(0, BadName(" LOG_ROOT".into()))]);
        assert_eq!(err("$LOG_ROOT/x"), [(0, LoneDollar("LOG_ROOT".into()))]);
        assert_eq!(err("/x/$"), [(3, LoneDollar(String::new()))]);
        assert_eq!(err("/x/$/"), [(3, LoneDollar(String::new()))]);
    }

    #[test]
    fn variable_problems_are_errors() {
        assert_eq!(err("${NOPE}/x"), [(0, Unset("NOPE".into()))]);
        assert_eq!(err("/é/${EMPTY}"), [(4, Empty("EMPTY".into()))]);
        assert_eq!(Env::empty().get("LOG_ROOT"), None);
    }

    #[test]
    fn every_problem_is_reported() {
        assert_eq!(
            err("${A}/$x/${}/${LOG_ROOT}/${9"),
            [
                (0, Unset("A".into())),
                (5, LoneDollar("x".into())),
                (8, EmptyName),
                (24, Unterminated),
            ]
        );
    }

    #[test]
    fn offsets_map_back_to_the_unexpanded_text() {
        let text = "ab${LOG_ROOT}cd$$e";
        let e = expand(text, &env()).unwrap();
        assert_eq!(e.text, "ab/srv/logscd$e");
        assert_eq!(e.source_offset(0), 0);
        assert_eq!(e.source_offset(1), 1);
        for i in 2..11 {
            assert_eq!(e.source_offset(i), 2, "byte {i} comes from the variable");
        }
        assert_eq!(e.source_offset(11), 13); // `c`
        assert_eq!(e.source_offset(13), 16); // the `$` of `$$`
        assert_eq!(e.source_offset(14), 17); // `e`
        assert_eq!(e.source_offset(15), 18); // end
    }

    #[test]
    fn process_env_and_fn_env() {
        let env = Env::from_fn(|name| (name == "X").then(|| "1".to_string()));
        assert_eq!(env.get("X").as_deref(), Some("1"));
        assert_eq!(env.get("Y"), None);
        // PATH is set in any environment tests run in.
        assert!(Env::process().get("PATH").is_some());
        assert_eq!(format!("{:?}", Env::default()), "Env::process()");
    }

    #[test]
    fn an_allowing_env_expands_only_the_names_it_allows() {
        let env = env().allowing(["LOG_ROOT", "EMPTY", "MISSING"]);
        assert_eq!(expand("${LOG_ROOT}/x", &env).unwrap().text, "/srv/logs/x");
        let errors = |text: &str| -> Vec<ExpandErrorKind> {
            expand(text, &env)
                .unwrap_err()
                .into_iter()
                .map(|e| e.kind)
                .collect()
        };
        // Set in the inner environment, but not allowed: refused, value not shown.
        assert_eq!(errors("${_X1}"), [NotAllowed("_X1".into())]);
        // Allowed names keep the inner environment's answers.
        assert_eq!(errors("${EMPTY}"), [Empty("EMPTY".into())]);
        assert_eq!(errors("${MISSING}"), [Unset("MISSING".into())]);
        assert_eq!(env.get("_X1"), None);
        let (message, hint) = ExpandError {
            offset: 0,
            kind: NotAllowed("SECRET".into()),
        }
        .describe("the host value");
        assert!(message.contains("`SECRET`"), "{message}");
        assert!(hint.contains("--job-env SECRET"), "{hint}");
    }

    #[test]
    fn names() {
        for good in ["A", "_", "LOG_ROOT", "a1", "_9"] {
            assert!(is_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A.B", "é", "A B"] {
            assert!(!is_var_name(bad), "{bad}");
        }
    }
}
