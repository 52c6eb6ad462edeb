//! The process's log, with a cluster's secret values taken out of every line.
//!
//! A member logs what librdkafka says about a job's clients (through rdkafka's
//! client contexts, into `log`, into `tracing`) and the engine's messages about
//! its jobs; any of them could quote a piece of an option's value. Every line
//! passes through [`Scrubbed`] on its way to stderr, so no client context or call
//! site can forget it; the values to scrub are set once the member knows them
//! ([`set`], from `--job-secret-env`).

use std::io::{self, Write};
use std::sync::OnceLock;

use tidemark_jobs::kafka_options::SecretScrubber;

static SCRUBBER: OnceLock<SecretScrubber> = OnceLock::new();

/// Scrubs `scrubber`'s values from every log line from now on (set once; a
/// second call is ignored, as a process runs one member).
pub fn set(scrubber: SecretScrubber) {
    let _ = SCRUBBER.set(scrubber);
}

/// stderr, scrubbed. `tracing_subscriber::fmt` writes each event whole, in one
/// `write_all`, so a secret is never split between two writes.
pub struct Scrubbed;

impl Write for Scrubbed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match SCRUBBER.get() {
            Some(s) if !s.is_empty() => {
                let text = String::from_utf8_lossy(buf);
                io::stderr().lock().write_all(s.scrub(&text).as_bytes())?;
            }
            _ => io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
