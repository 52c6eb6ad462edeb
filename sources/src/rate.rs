//! Token-bucket rate limiting for source reads (`rate_limit = "5MiB/s"`).
//!
//! This is back-pressure, not dropping: a source asks how many bytes it may read
//! now ([`RateLimiter::allowance`]), reads at most that, reports what it read
//! ([`RateLimiter::consume`]) and, when nothing is allowed, reschedules itself
//! after [`RateLimiter::wait_hint`]. Unread bytes stay in the file.
//!
//! Time is passed in rather than read from the clock, so the arithmetic is tested
//! with synthetic instants and the limiter never sleeps itself.

use std::time::{Duration, Instant};

/// Token amounts are kept in byte-nanoseconds-per-second units (bytes × 10⁹), so
/// refilling for any elapsed nanosecond count is exact integer arithmetic: no
/// drift from rounding, however often the limiter is asked.
const SCALE: i128 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    /// Bucket capacity in scaled units.
    capacity: i128,
    /// Scaled tokens available at `last`. Negative after a read larger than the
    /// allowance (a source may have to finish a line): the debt is paid off before
    /// more is allowed, so the average rate still holds.
    tokens: i128,
    /// When `tokens` was last brought up to date; `None` until first asked.
    last: Option<Instant>,
}

impl RateLimiter {
    /// `bytes_per_sec` = the sustained rate (0 = no limit); `burst` = how many bytes
    /// may be read at once after an idle period (at least 1 byte). The bucket
    /// starts full, so a source can start reading immediately.
    pub fn new(bytes_per_sec: u64, burst: u64) -> RateLimiter {
        let capacity = i128::from(burst.max(1)) * SCALE;
        RateLimiter {
            rate: bytes_per_sec,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// Starts with an empty bucket: nothing is free at the start, so a read of
    /// less than a second's worth (a short replay, a restart) still keeps to the
    /// rate instead of going through as one burst.
    pub fn starting_empty(mut self) -> RateLimiter {
        self.tokens = 0;
        self
    }

    /// A limiter that always allows everything.
    pub fn unlimited() -> RateLimiter {
        RateLimiter::new(0, 1)
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate == 0
    }

    /// Bytes that may be read now (`usize::MAX` when unlimited).
    pub fn allowance(&mut self, now: Instant) -> usize {
        if self.is_unlimited() {
            return usize::MAX;
        }
        self.tokens = self.tokens_at(now);
        // A clock that goes backwards (instants from different sources) must not
        // move `last` back, or the same interval would be credited twice.
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        usize::try_from(self.tokens.max(0) / SCALE).unwrap_or(usize::MAX)
    }

    /// Records `n` bytes read. May exceed the allowance (the excess becomes debt).
    pub fn consume(&mut self, n: usize) {
        if self.is_unlimited() {
            return;
        }
        let cost = i128::try_from(n)
            .unwrap_or(i128::MAX / 4)
            .saturating_mul(SCALE);
        // Bounded below so repeated huge overdrafts cannot overflow; a debt this
        // size already means "wait practically forever".
        self.tokens = self.tokens.saturating_sub(cost).max(i128::MIN / 4);
    }

    /// How long from `now` until at least one byte is allowed (zero if already).
    pub fn wait_hint(&self, now: Instant) -> Duration {
        if self.is_unlimited() {
            return Duration::ZERO;
        }
        let missing = SCALE - self.tokens_at(now);
        if missing <= 0 {
            return Duration::ZERO;
        }
        // Each nanosecond earns `rate` scaled units; round up so waiting exactly
        // the hint always suffices.
        let rate = i128::from(self.rate);
        let nanos = (missing + rate - 1) / rate;
        let secs = nanos / SCALE;
        match u64::try_from(secs) {
            Ok(s) => Duration::new(s, (nanos % SCALE) as u32),
            Err(_) => Duration::MAX,
        }
    }

    /// Tokens at `now`, refilled since `last` and capped at the bucket capacity.
    fn tokens_at(&self, now: Instant) -> i128 {
        let Some(last) = self.last else {
            return self.tokens;
        };
        let elapsed =
            i128::try_from(now.saturating_duration_since(last).as_nanos()).unwrap_or(i128::MAX);
        let earned = elapsed.saturating_mul(i128::from(self.rate));
        self.tokens.saturating_add(earned).min(self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_with_a_full_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 500);
        assert_eq!(r.allowance(t0), 500);
        r.consume(500);
        assert_eq!(r.allowance(t0), 0);
        assert_eq!(r.allowance(t0 + ms(100)), 100);
        r.consume(60);
        assert_eq!(r.allowance(t0 + ms(100)), 40);
        assert_eq!(r.allowance(t0 + ms(300)), 240);
    }

    #[test]
    fn starting_empty_allows_nothing_until_time_passes() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 500).starting_empty();
        assert_eq!(r.allowance(t0), 0);
        assert_eq!(r.allowance(t0 + ms(100)), 100);
        assert_eq!(r.allowance(t0 + Duration::from_secs(10)), 500);
    }

    #[test]
    fn never_exceeds_the_burst_after_idling() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 500);
        assert_eq!(r.allowance(t0), 500);
        assert_eq!(r.allowance(t0 + Duration::from_secs(3600)), 500);
    }

    #[test]
    fn sustained_rate_matches_over_many_small_steps() {
        // 1 ms steps at 333 B/s: fractional tokens must accumulate exactly, not be
        // rounded away at every step.
        let t0 = Instant::now();
        let mut r = RateLimiter::new(333, 10);
        r.allowance(t0);
        r.consume(10);
        let mut read = 0usize;
        for i in 1..=10_000u64 {
            let a = r.allowance(t0 + ms(i));
            r.consume(a);
            read += a;
        }
        // 10 s at 333 B/s.
        assert_eq!(read, 3330);
    }

    #[test]
    fn overdraft_is_paid_back_before_more_is_allowed() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 100);
        assert_eq!(r.allowance(t0), 100);
        r.consume(600); // a long line finished past the allowance: 500 bytes of debt
        assert_eq!(r.allowance(t0 + ms(400)), 0);
        assert_eq!(r.wait_hint(t0 + ms(400)), ms(101));
        assert_eq!(r.allowance(t0 + ms(501)), 1);
    }

    #[test]
    fn wait_hint_is_exact_and_sufficient() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3, 10);
        assert_eq!(r.wait_hint(t0), Duration::ZERO);
        r.allowance(t0);
        r.consume(10);
        let hint = r.wait_hint(t0);
        // One byte at 3 B/s: a third of a second, rounded up to the nanosecond.
        assert_eq!(hint, Duration::from_nanos(333_333_334));
        assert_eq!(r.allowance(t0 + hint - Duration::from_nanos(1)), 0);
        assert_eq!(r.allowance(t0 + hint), 1);
    }

    #[test]
    fn unlimited_allows_everything() {
        let t0 = Instant::now();
        let mut r = RateLimiter::unlimited();
        r.consume(usize::MAX);
        assert_eq!(r.allowance(t0), usize::MAX);
        assert_eq!(r.wait_hint(t0), Duration::ZERO);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(u64::MAX, u64::MAX);
        assert!(r.allowance(t0) > 0);
        r.consume(usize::MAX);
        r.consume(usize::MAX);
        let _ = r.allowance(t0 + Duration::from_secs(1_000_000));
        let mut slow = RateLimiter::new(1, 0);
        assert_eq!(slow.allowance(t0), 1, "burst 0 is raised to 1 byte");
        for _ in 0..100 {
            slow.consume(usize::MAX);
        }
        assert_eq!(slow.allowance(t0 + Duration::from_secs(10)), 0);
        assert!(slow.wait_hint(t0) > Duration::from_secs(1_000_000));
    }

    #[test]
    fn a_clock_going_backwards_credits_nothing_twice() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 1000);
        r.allowance(t0 + ms(500));
        r.consume(1000);
        assert_eq!(r.allowance(t0), 0);
        assert_eq!(r.allowance(t0 + ms(600)), 100);
    }
}
