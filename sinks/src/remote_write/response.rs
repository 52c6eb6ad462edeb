//! What a receiver's answer means for a request (send on, retry, skip, fail),
//! and how long to wait before a retry.

use std::time::{Duration, SystemTime};

use tidemark_engine::stats::sink::Rejection;

/// Longest wait a `Retry-After` may ask for: a receiver asking for an hour is
/// capped so that the sink tries again (and says so) every few minutes.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the receiver holds the request.
    Accepted,
    /// Try again later (5xx, 429, no answer), after the receiver's `Retry-After`
    /// if it gave one.
    Retry { after: Option<Duration> },
    /// The receiver refused these samples for good (out of order, too old,
    /// duplicate): counted and logged, never retried; the queue moves on. The
    /// request was rolled back as a whole.
    Rejected(Rejection),
    /// Any other 4xx: the request itself is wrong (auth, path, size); the sink
    /// fails with this hint.
    Refused { hint: &'static str },
}

/// The verdict on an HTTP answer with `status`, the start of its `body`, and
/// its `Retry-After` header if any; `now` for an HTTP-date.
pub fn classify(status: u16, body: &str, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Accepted;
    }
    // Checked before the status: receivers older than Prometheus 2.x sent these
    // as 500, and retrying them forever would stall the queue.
    if let Some(why) = rejection_in(body) {
        if (400..600).contains(&status) {
            return Verdict::Rejected(why);
        }
    }
    // Prometheus answers 500 for a series it can never store (a label name
    // twice, an invalid name): the same request fails the same way forever.
    if (500..600).contains(&status) && invalid_series(body) {
        return Verdict::Refused {
            hint: "the receiver cannot store these series (a label twice, or an invalid label); \
                   check the job's labels and external_labels (names starting with `__` are reserved)",
        };
    }
    if status == 429 || (500..600).contains(&status) {
        return Verdict::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        };
    }
    Verdict::Refused {
        hint: hint_for(status),
    }
}

/// Prometheus's storage errors (tsdb/storage: `out of order sample`, `out of
/// bounds`, `duplicate sample for timestamp`; newer ones say `too old sample`).
fn rejection_in(body: &str) -> Option<Rejection> {
    let b = body.to_ascii_lowercase();
    if b.contains("duplicate sample for timestamp") {
        // Another value for a timestamp it holds: not what a resend makes.
        Some(Rejection::Conflict)
    } else if b.contains("out of order") {
        Some(Rejection::OutOfOrder)
    } else if b.contains("out of bounds") || b.contains("too old") {
        Some(Rejection::TooOld)
    } else {
        None
    }
}

/// Prometheus's errors about the series of a request, not about its storage
/// being unavailable (`label name "__name__" is not unique: invalid sample`).
fn invalid_series(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("invalid sample") || b.contains("is not unique")
}

fn hint_for(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the sink's bearer_token_file or basic_auth, and that the receiver accepts them",
        404 => "check the url's path (Prometheus: /api/v1/write) and that Prometheus runs with --web.enable-remote-write-receiver",
        405 => "check the url's path: it must be the receiver's remote-write endpoint (Prometheus: /api/v1/write)",
        413 => "the request was too large for the receiver: lower the sink's max_samples_per_send",
        _ => "the receiver refused the request; check the url and the receiver's logs",
    }
}

/// `Retry-After` in seconds or as an HTTP-date, capped at [`MAX_RETRY_AFTER`];
/// `None` when it is neither (the usual backoff applies then).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Exponential backoff: `min` doubling up to `max`, back to `min` after a
/// success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next retry; a receiver's `Retry-After` wins (it
    /// knows best when it is back).
    pub fn wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        retry_after.unwrap_or(wait)
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Whether a resumed run may still be sending windows again that the
/// receiver holds already (the ones after the checkpoint the last run had sent
/// before it stopped).
///
/// Those come first, in order: every resent window is either held whole
/// (its requests answered "out of order", or 200 where its samples are each
/// series' newest) or it is the first window the last run had not finished,
/// whose requests are all accepted. So once a window had every request
/// accepted, every later window is new, and a refusal is a loss again. A
/// window counts once it had a request (an empty one sends none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// Not resumed, or past the resent windows.
    Over,
    /// Resumed; `window`: the window of the last settled request, `clean`:
    /// whether every request of it was accepted.
    Maybe { window: Option<i64>, clean: bool },
}

impl Resend {
    pub fn new(resumed: bool) -> Resend {
        if resumed {
            Resend::Maybe {
                window: None,
                clean: true,
            }
        } else {
            Resend::Over
        }
    }

    /// A request of `window` settled (`accepted` or refused): whether, if
    /// refused, it may be a resent window the receiver holds.
    pub fn settle(&mut self, window: i64, accepted: bool) -> bool {
        let Resend::Maybe { window: w, clean } = self else {
            return false;
        };
        if *w != Some(window) {
            if w.is_some() && *clean {
                *self = Resend::Over;
                return false;
            }
            *w = Some(window);
            *clean = true;
        }
        if !accepted {
            *clean = false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_is_resending_until_a_window_is_accepted_whole() {
        assert!(!Resend::new(false).settle(0, false));
        let mut r = Resend::new(true);
        // Window 0: accepted then refused (its first series were each's
        // newest, later ones had newer samples): still resending.
        assert!(r.settle(0, true));
        assert!(r.settle(0, false));
        assert!(r.settle(60, false));
        // Window 120 accepted whole: the windows after it are new.
        assert!(r.settle(120, true));
        assert!(r.settle(120, true));
        assert!(!r.settle(180, false));
        assert_eq!(r, Resend::Over);
        assert!(!r.settle(240, false));
    }

    fn v(status: u16, body: &str, retry_after: Option<&str>) -> Verdict {
        classify(status, body, retry_after, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(v(200, "", None), Verdict::Accepted);
        assert_eq!(v(204, "", None), Verdict::Accepted);
        assert_eq!(
            v(400, "out of order sample\n", None),
            Verdict::Rejected(Rejection::OutOfOrder)
        );
        // As older receivers sent it: never retried all the same.
        assert_eq!(
            v(500, "out of order sample", None),
            Verdict::Rejected(Rejection::OutOfOrder)
        );
        assert_eq!(
            v(400, "duplicate sample for timestamp", None),
            Verdict::Rejected(Rejection::Conflict)
        );
        assert_eq!(
            v(400, "out of bounds", None),
            Verdict::Rejected(Rejection::TooOld)
        );
        assert_eq!(
            v(400, "too old sample", None),
            Verdict::Rejected(Rejection::TooOld)
        );
        assert_eq!(
            v(429, "slow down", Some("7")),
            Verdict::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(v(503, "", None), Verdict::Retry { after: None });
        // Sent again it fails again: the sink fails instead of retrying forever.
        assert!(matches!(
            v(
                500,
                "label name \"__name__\" is not unique: invalid sample",
                None
            ),
            Verdict::Refused { .. }
        ));
        assert_eq!(v(500, "disk full", None), Verdict::Retry { after: None });
        let refused = |s| match v(s, "nope", None) {
            Verdict::Refused { hint } => hint,
            other => panic!("{s}: {other:?}"),
        };
        assert!(refused(401).contains("bearer_token_file"));
        assert!(refused(403).contains("basic_auth"));
        assert!(refused(404).contains("--web.enable-remote-write-receiver"));
        assert!(refused(413).contains("max_samples_per_send"));
        assert!(refused(400).contains("refused"));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        let in_30s = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&in_30s, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(30), ms(200));
        let waits: Vec<_> = (0..5).map(|_| b.wait(None)).collect();
        assert_eq!(waits, [ms(30), ms(60), ms(120), ms(200), ms(200)]);
        assert_eq!(b.wait(Some(ms(7))), ms(7));
        b.reset();
        assert_eq!(b.wait(None), ms(30));
    }
}
