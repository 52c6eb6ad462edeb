//! One host's stream of generated requests: a seeded PRNG per host (so hosts
//! can be generated in parallel without changing the bytes), a realistic mix
//! of methods, paths and statuses, and bounded disorder.

use super::spec::{SampleLine, SampleSpec};

/// splitmix64: tiny, fast, good enough for synthetic data.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Approximately standard normal (Irwin-Hall of four 16-bit uniforms).
    pub(super) fn normal(&mut self) -> f64 {
        let x = self.next();
        let s: u64 = (0..4).map(|i| (x >> (16 * i)) & 0xFFFF).sum();
        (s as f64 / 65_536.0 - 2.0) * 1.732_050_8
    }
    pub(super) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

pub(super) const UAS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) tidemark-sample/1.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "curl/8.11.0",
];
const REFERERS: [&str; 3] = ["-", "https://shop.example.com/", "https://www.google.com/"];
/// (path, query prefix or "" for none) per method.
const GET_PATHS: [(&str, &str); 10] = [
    ("/", ""),
    ("/index.html", ""),
    ("/static/js/app.js", ""),
    ("/static/css/site.css", ""),
    ("/images/logo.png", ""),
    ("/api/users", "?id="),
    ("/api/orders", "?page="),
    ("/api/search", "?q=item"),
    ("/api/cart", ""),
    ("/health", ""),
];
const POST_PATHS: [(&str, &str); 3] =
    [("/api/orders", ""), ("/login", ""), ("/api/cart", "?item=")];
const PUT_PATHS: [(&str, &str); 2] = [("/api/users", "?id="), ("/api/cart", "?item=")];
const DELETE_PATHS: [(&str, &str); 2] = [("/api/cart", "?item="), ("/api/sessions", "?id=")];

/// One host's line stream.
pub(super) struct HostStream {
    rng: Rng,
    host: usize,
    /// Lines generated so far.
    pub(super) idx: u64,
    total: u64,
    lpm: u64,
    start: i64,
    disorder: u64,
    path: String,
}

impl HostStream {
    pub(super) fn new(spec: &SampleSpec, host: usize) -> Self {
        let mut seed = Rng(spec.seed ^ (host as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        HostStream {
            rng: Rng(seed.next()),
            host,
            idx: 0,
            total: spec.lines_per_host(),
            lpm: u64::from(spec.lines_per_minute),
            start: spec.start_unix_secs,
            disorder: u64::from(spec.disorder_secs),
            path: String::with_capacity(64),
        }
    }

    pub(super) fn next_line(&mut self) -> Option<SampleLine<'_>> {
        if self.idx >= self.total {
            return None;
        }
        let (minute, i) = (self.idx / self.lpm, self.idx % self.lpm);
        self.idx += 1;
        let r = &mut self.rng;
        // Nominal times never decrease, so `nominal - lag` (lag <= disorder) is never more
        // than `disorder` below the max of the earlier lines.
        let nominal = self.start + (minute * 60 + i * 60 / self.lpm) as i64;
        let disordered = self.disorder > 0 && r.below(4) == 0;
        let lag = if disordered {
            1 + r.below(self.disorder)
        } else {
            0
        };
        let event_secs = (nominal - lag as i64).max(self.start);
        let remote_addr = [
            10,
            r.below(16) as u8,
            r.below(256) as u8,
            1 + r.below(254) as u8,
        ];
        let (method, paths): (_, &[(&str, &str)]) = match r.below(100) {
            0..=79 => ("GET", &GET_PATHS),
            80..=91 => ("POST", &POST_PATHS),
            92..=96 => ("PUT", &PUT_PATHS),
            _ => ("DELETE", &DELETE_PATHS),
        };
        let (base, query) = paths[r.below(paths.len() as u64) as usize];
        self.path.clear();
        self.path.push_str(base);
        if !query.is_empty() {
            self.path.push_str(query);
            let n = 1 + r.below(500) as u32; // 1..=500: "id=7", "id=42", "id=500"
            let digits = [n / 100, n / 10 % 10, n % 10].map(|d| char::from(b'0' + d as u8));
            self.path
                .extend(&digits[usize::from(n < 100) + usize::from(n < 10)..]);
        }
        let status = match r.below(10_000) {
            0..=8_799 => 200,
            8_800..=8_999 => 301,
            9_000..=9_449 => 304,
            9_450..=9_799 => 404,
            9_800..=9_949 => 500,
            _ => 503,
        };
        let body_bytes = match status {
            200 => r.lognormal(2_400.0, 1.3).clamp(40.0, 8e6) as u64,
            301 => 169,
            304 => 0,
            404 => 153 + r.below(400),
            500 => 177,
            _ => 197,
        };
        let mut ms = r.lognormal(35.0, 0.9);
        if r.below(100) == 0 {
            ms *= 8.0; // slow tail
        }
        if status == 503 {
            ms = 1.0 + r.below(5) as f64;
        }
        let referer = REFERERS[r.below(10).saturating_sub(7) as usize];
        Some(SampleLine {
            host: self.host,
            event_secs,
            remote_addr,
            method,
            path: &self.path,
            protocol: ["HTTP/2.0", "HTTP/1.1"][usize::from(r.below(5) > 0)],
            status,
            body_bytes,
            referer,
            user_agent: UAS[r.below(UAS.len() as u64) as usize],
            request_time_ms: ms.clamp(1.0, 60_000.0) as u32,
        })
    }
}
