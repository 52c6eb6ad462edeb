//! Submitted jobs kept in the member's state folder (`DIR/submitted/NAME.toml`),
//! written atomically, so a restarted cluster installs them again and each resumes
//! from its checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct JobStore {
    dir: PathBuf,
}

impl JobStore {
    pub fn open(state_dir: &Path) -> std::io::Result<JobStore> {
        let dir = state_dir.join("submitted");
        std::fs::create_dir_all(&dir)?;
        Ok(JobStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Keeps a job's TOML (temp file, fsync, rename, fsync the folder).
    pub fn save(&self, name: &str, toml: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.toml.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(toml.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::File::open(&self.dir)?.sync_all(),
        }
    }

    /// Every kept job, by name: (name, TOML, when it was submitted in ms since
    /// the epoch — the file's modification time).
    pub fn load(&self) -> std::io::Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let submitted = std::fs::metadata(&path)?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            out.push((name.to_string(), std::fs::read_to_string(&path)?, submitted));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_jobs_load_back_and_removed_ones_do_not() {
        let d = tempfile::tempdir().unwrap();
        let s = JobStore::open(d.path()).unwrap();
        s.save("b", "name = \"b\"").unwrap();
        s.save("a", "name = \"a\"").unwrap();
        s.save("a", "name = \"a\" # v2").unwrap();
        let kept: Vec<(String, String)> = s
            .load()
            .unwrap()
            .into_iter()
            .map(|(n, t, _)| (n, t))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("a".to_string(), "name = \"a\" # v2".to_string()),
                ("b".to_string(), "name = \"b\"".to_string())
            ]
        );
        s.remove("b").unwrap();
        s.remove("missing").unwrap();
        assert_eq!(s.load().unwrap().len(), 1);
    }
}
