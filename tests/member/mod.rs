//! A `tidemark cluster` member process for black-box tests, driven by `tidemark job`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary, logging at info, with no API token from the environment.
pub fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "info")
        .env_remove("TIDEMARK_API_TOKEN");
    c
}

pub struct Member {
    pub child: Child,
    pub api: String,
    pub log: PathBuf,
}

impl Member {
    /// Starts `tidemark cluster -w 2` on 127.0.0.1 (a free port) with `extra`
    /// arguments, and waits until its API is up.
    pub fn start(state: &Path, log: &Path, extra: &[&str]) -> Member {
        let err = std::fs::File::create(log).unwrap();
        let child = tidemark()
            .args(["cluster", "-w", "2", "--api", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let mut m = Member {
            child,
            api: String::new(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = m.log();
            if let Some(rest) = text.split("control API on http://").nth(1) {
                m.api = rest.split(';').next().unwrap().to_string();
                return m;
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("the member exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the member did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn job(&self, args: &[&str]) -> Output {
        tidemark()
            .arg("job")
            .args(args)
            .args(["--api", &self.api])
            .output()
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's stdout and stderr, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
