//! What the control API calls on a member: [`Control`] implements
//! [`JobControl`] over the engine's [`Cluster`], adding a lines/s estimate and the
//! warnings a job's status shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_api::{
    ClosedWindow, ControlError, Health, HealthStatus, JobControl, JobState, JobStatus, JobSummary,
};
use tidemark_engine::cluster::{self, Cluster, JobInfo};
use tidemark_engine::stats::{export, MemberStats};
use tidemark_jobs::kafka_options::SecretScrubber;
use tidemark_jobs::Job;
use tidemark_sources::file::{discover, AllowedRoots};

/// What the API calls: the member plus a lines/s estimate per job.
pub(super) struct Control {
    member: Arc<Cluster>,
    members: u32,
    rates: Mutex<HashMap<String, (Instant, u64, f64)>>,
    /// Taken out of a job's `last_error` and warnings: librdkafka's messages there
    /// may quote part of an option's value.
    secrets: SecretScrubber,
}

impl JobControl for Control {
    fn submit(&self, job: Job, toml: String) -> Result<JobSummary, ControlError> {
        self.member.submit(&job, &toml).map_err(control_error)?;
        Ok(self
            .member
            .registry()
            .get(&job.name)
            .map(|j| summary(&j))
            .unwrap_or_else(|| JobSummary {
                name: job.name.clone(),
                state: JobState::Running,
                submitted_at: jiff::Timestamp::now(),
            }))
    }

    fn list(&self) -> Vec<JobSummary> {
        self.member.registry().list().iter().map(summary).collect()
    }

    fn status(&self, name: &str) -> Option<JobStatus> {
        let j = self.member.registry().get(name)?;
        let s = &j.stats;
        // Lines and errors of every member; the frontier is process 0's (it writes).
        let all = j.cluster_stats();
        let rate = self.rate(name, all.lines_read, j.submitted_ms);
        let errors = errors(&j, &all);
        let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok();
        Some(JobStatus {
            summary: summary(&j),
            watermark: s.frontier_ms.filter(|&f| f > 0).and_then(ts),
            last_closed_window: s.last_window_ms.and_then(|(start, end)| {
                Some(ClosedWindow {
                    start: ts(start)?,
                    end: ts(end)?,
                })
            }),
            lines_per_sec: rate,
            lines_read: all.lines_read,
            lines_read_by_member: std::iter::once((0, s.lines_read))
                .chain(j.members.iter().map(|(p, m)| (*p as u32, m.lines_read)))
                .collect(),
            errors,
            last_error: j
                .error
                .as_deref()
                .map(|e| self.secrets.scrub(e).into_owned()),
            warnings: no_file_warnings(&j, self.members)
                .into_iter()
                .chain(discovery_warnings(&all))
                .map(|w| self.secrets.scrub(&w).into_owned())
                .collect(),
            open_files: tidemark_api::model::OpenFiles {
                open: all.open_files,
                parked: all.parked_files,
                reopen_waits: all.reopen_fd_waits,
                checkpoint_waits: all.checkpoint_fd_waits,
                lost_while_parked: all.lost_while_parked,
                fd_backoffs: all.fd_backoffs,
                reserved: self.member.fd_budget().of(name) as u64,
            },
        })
    }

    fn metrics(&self, accept: Option<&str>) -> (&'static str, String) {
        // Counters and groups of every member; the rest (sinks, checkpoints,
        // windows) are process 0's: it alone writes.
        let jobs: Vec<(String, tidemark_engine::JobStats)> = self
            .member
            .registry()
            .list()
            .iter()
            .map(|j| (j.name.clone(), j.cluster_view()))
            .collect();
        let views: Vec<(&str, &tidemark_engine::JobStats)> =
            jobs.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let format = export::Format::negotiate(accept);
        let body = export::render(&views, tidemark_engine::time::wall_clock_ms(), format);
        (format.content_type(), body)
    }

    fn stop(&self, name: &str) -> Result<(), ControlError> {
        self.member.stop(name).map_err(control_error)
    }

    fn health(&self) -> Health {
        let jobs = self.member.registry().list();
        let failed = jobs
            .iter()
            .filter(|j| j.state == cluster::JobState::Failed)
            .count() as u32;
        let running = self.member.is_running();
        let registry = self.member.registry();
        let connected = registry.connected();
        // The others report every second; a member silent for 5 s is in trouble
        // (a lost connection ends every member's workers).
        let members = if !running || !connected {
            u32::from(running)
        } else {
            1 + registry.members_heard(Duration::from_secs(5)) as u32
        };
        let first_reports_due = registry
            .connected_for()
            .is_some_and(|t| t < Duration::from_secs(5));
        let all_heard = members == self.members || (self.members > 1 && first_reports_due);
        let ok = running && connected && all_heard;
        Health {
            ok,
            status: Some(if !ok {
                HealthStatus::Unavailable
            } else if failed > 0 {
                HealthStatus::Degraded
            } else {
                HealthStatus::Ok
            }),
            members: if connected && first_reports_due {
                self.members
            } else {
                members
            },
            expected_members: self.members,
            jobs: jobs.len() as u32,
            failed_jobs: failed,
            open_files: Some(open_files_cap(self.member.fd_budget())),
            detail: if !running {
                Some("the member's workers have stopped".into())
            } else if !connected {
                Some(format!(
                    "waiting for every member to connect ({} expected; see the hosts file)",
                    self.members
                ))
            } else if !all_heard {
                Some(format!(
                    "only {members} of {} members reported in the last 5 s",
                    self.members
                ))
            } else if failed > 0 {
                // Counted, not named: anyone who can reach the port reads this.
                Some(format!(
                    "{failed} job{} failed; `tidemark job list` (which needs the API token) names {}",
                    if failed == 1 { "" } else { "s" },
                    if failed == 1 { "it" } else { "them" }
                ))
            } else {
                None
            },
        }
    }
}

impl Control {
    /// The API's view of `member`, one of `members` processes.
    pub(super) fn new(member: Arc<Cluster>, members: u32, secrets: SecretScrubber) -> Control {
        Control {
            member,
            members,
            rates: Mutex::new(HashMap::new()),
            secrets,
        }
    }

    /// Lines per second since the previous status call at least a second ago; the
    /// first call averages since the job was submitted.
    fn rate(&self, name: &str, lines: u64, submitted_ms: i64) -> f64 {
        let now = Instant::now();
        let Ok(mut rates) = self.rates.lock() else {
            return 0.0;
        };
        // Forget jobs that are gone (a stopped job submitted again starts afresh).
        let registry = self.member.registry();
        rates.retain(|n, _| registry.contains(n));
        let e = rates.entry(name.to_string()).or_insert_with(|| {
            let secs = (tidemark_engine::time::wall_clock_ms() - submitted_ms) as f64 / 1000.0;
            let first = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
            (now, lines, first)
        });
        let secs = now.duration_since(e.0).as_secs_f64();
        if secs >= 1.0 {
            e.2 = lines.saturating_sub(e.1) as f64 / secs;
            *e = (now, lines, e.2);
        }
        if e.2.is_finite() {
            e.2
        } else {
            0.0
        }
    }
}

/// The status's error counts, every member's. A kafka job's also say what its
/// source skipped or saw missing: lines lost upstream, records it could not use,
/// heartbeats from a clock too far ahead.
fn errors(j: &JobInfo, all: &MemberStats) -> std::collections::BTreeMap<String, u64> {
    let mut errors = std::collections::BTreeMap::new();
    errors.insert(JobStatus::LATE.to_string(), all.late_lines);
    errors.insert(JobStatus::OVERSIZE.to_string(), all.oversize_lines);
    errors.insert(JobStatus::INVALID_UTF8.to_string(), all.invalid_utf8_lines);
    errors.insert(JobStatus::OUTLIER.to_string(), all.outlier_lines);
    errors.insert(
        JobStatus::CLOCK_BEHIND_GROUPS.to_string(),
        all.trailing_clock_groups,
    );
    for (reason, n) in &all.parse_errors {
        errors.insert(JobStatus::malformed_key(reason), *n);
    }
    for (metric, n) in &all.series_limit_dropped {
        errors.insert(format!("series_limit_dropped:{metric}"), *n);
    }
    // The file source's edges (issue 10 §2a, §3, §6).
    for (key, n) in [
        ("files_not_opened", all.file_open_errors),
        ("duplicate_paths", all.duplicate_paths),
        ("not_regular_files", all.not_regular_files),
        ("symlink_loops", all.symlink_loops),
        ("damaged_gzip", all.damaged_gzip_files),
    ] {
        errors.insert(key.to_string(), n);
    }
    if j.job.as_ref().is_some_and(|job| job.source.kafka.is_some()) {
        for (key, n) in [
            ("kafka_lost_lines", all.kafka_lost_lines),
            ("kafka_bad_records", all.kafka_bad_records),
            ("kafka_heartbeats_ahead", all.kafka_heartbeats_ahead),
        ] {
            errors.insert(key.to_string(), n);
        }
    }
    errors
}

/// Include globs that match no file (a typo, a folder the member cannot read, a
/// `${LOG_ROOT}` that differs between machines): on process 0 each glob is looked
/// up now; another member counts when its last report had no file group. A kafka
/// source has no globs and no file groups: nothing to warn about.
fn no_file_warnings(j: &JobInfo, members: u32) -> Vec<String> {
    let mut out = Vec::new();
    let on_0 = if members > 1 { " on member 0" } else { "" };
    if let Some(job) = &j.job {
        if job.source.kafka.is_some() {
            return out;
        }
        let src = &job.source;
        let roots = AllowedRoots::of_source(src);
        for glob in &src.include {
            let Ok(found) = discover(std::slice::from_ref(glob), &src.exclude, &roots) else {
                continue;
            };
            if !found.groups.is_empty() {
                continue;
            }
            out.push(if found.outside.is_empty() {
                format!("include glob `{glob}` matches no file{on_0}: check the path, and that the member may list its folders")
            } else {
                format!("include glob `{glob}` matches no file inside the allowed roots{on_0}: the {} it matches are outside --allow-root", found.outside.len())
            });
        }
    }
    for (process, stats) in &j.members {
        if stats.file_groups == 0 {
            out.push(format!(
                "the include globs match no file on member {process}: check the paths (and ${{NAME}} values) on that machine"
            ));
        }
    }
    out
}

/// What the file source's counts say was left unread. The counts were in `errors`
/// already, where a reader sees a 0-filled table; a sentence says what happened and
/// where the details are.
fn discovery_warnings(all: &MemberStats) -> Vec<String> {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut out = Vec::new();
    let n = all.file_open_errors;
    if n > 0 {
        out.push(format!(
            "{n} time{} a matched file could not be opened or was refused (unreadable, or its real path is outside --allow-root): such files are retried and hold their windows; the members' logs name each file and why",
            plural(n)
        ));
    }
    let n = all.not_regular_files;
    if n > 0 {
        out.push(format!(
            "{n} matched path{} {} not a regular file (a FIFO, device or socket) and {} not read",
            plural(n),
            if n == 1 { "is" } else { "are" },
            if n == 1 { "is" } else { "are" }
        ));
    }
    let n = all.symlink_loops;
    if n > 0 {
        out.push(format!(
            "{n} symbolic link loop{} in the include globs' folders {} not followed",
            plural(n),
            if n == 1 { "was" } else { "were" }
        ));
    }
    let n = all.damaged_gzip_files;
    if n > 0 {
        out.push(format!(
            "{n} compressed file{} {} damaged and read only up to the damage; the members' logs say whether lines were lost",
            plural(n),
            if n == 1 { "was" } else { "were" }
        ));
    }
    out
}

fn summary(j: &JobInfo) -> JobSummary {
    JobSummary {
        name: j.name.clone(),
        state: match j.state {
            cluster::JobState::Running => JobState::Running,
            cluster::JobState::Stopping => JobState::Stopping,
            cluster::JobState::Failed => JobState::Failed,
        },
        submitted_at: jiff::Timestamp::from_millisecond(j.submitted_ms)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    }
}

fn open_files_cap(budget: &cluster::FdBudget) -> tidemark_api::model::OpenFilesCap {
    let (cap, reserved) = budget.figures();
    tidemark_api::model::OpenFilesCap {
        cap: cap as u64,
        reserved: reserved as u64,
        left: cap.saturating_sub(reserved) as u64,
    }
}

fn control_error(e: cluster::member::ControlError) -> ControlError {
    match e {
        cluster::member::ControlError::Duplicate { job } => ControlError::Duplicate(job),
        cluster::member::ControlError::NotFound { job } => ControlError::NotFound(job),
        cluster::member::ControlError::JobLimit(limit) => ControlError::JobLimit { limit },
        e @ cluster::member::ControlError::OpenFilesCap(_) => {
            ControlError::OverLimit(e.to_string())
        }
        // The member cannot take the command now: the API says why in text.
        e @ (cluster::member::ControlError::MemberShuttingDown
        | cluster::member::ControlError::ClusterShuttingDown
        | cluster::member::ControlError::Stopped
        | cluster::member::ControlError::StillStopping { .. }
        | cluster::member::ControlError::KeptJobs { .. }) => {
            ControlError::Unavailable(e.to_string())
        }
    }
}

/// `--health-addr` of a member other than process 0, which hears no other
/// member's reports: ok once the cluster formed and this member's workers run.
pub(super) fn member_health(member: &Cluster, members: u32) -> Health {
    let registry = member.registry();
    let jobs = registry.list();
    let running = member.is_running();
    let connected = registry.connected();
    let ok = running && connected;
    Health {
        ok,
        status: Some(if ok {
            HealthStatus::Ok
        } else {
            HealthStatus::Unavailable
        }),
        members: if ok { members } else { u32::from(running) },
        expected_members: members,
        jobs: jobs.len() as u32,
        failed_jobs: jobs
            .iter()
            .filter(|j| j.state == cluster::JobState::Failed)
            .count() as u32,
        open_files: None,
        detail: if !running {
            Some("the member's workers have stopped".into())
        } else if !connected {
            Some(format!(
                "waiting for every member to connect ({members} expected; see the hosts file)"
            ))
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::member::ControlError as Member;

    #[test]
    fn a_member_that_cannot_take_a_command_now_is_unavailable_with_its_reason() {
        let io = || std::io::Error::other("disk full");
        for (e, text) in [
            (Member::MemberShuttingDown, "the member is shutting down"),
            (Member::Stopped, "the cluster has stopped"),
            (
                Member::StillStopping { job: "j".into() },
                "job \"j\" is still stopping; submit it again in a moment",
            ),
            (
                Member::KeptJobs {
                    action: "keep the job in the state folder",
                    source: io(),
                },
                "cannot keep the job in the state folder: disk full",
            ),
        ] {
            match control_error(e) {
                ControlError::Unavailable(m) => assert_eq!(m, text),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            control_error(Member::NotFound { job: "j".into() }),
            ControlError::NotFound(j) if j == "j"
        ));
    }

    fn job_info(toml: &str, member_file_groups: u64) -> JobInfo {
        let job = tidemark_jobs::from_str(toml, "job.toml", std::path::Path::new("/"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let member = MemberStats {
            file_groups: member_file_groups,
            ..MemberStats::default()
        };
        JobInfo {
            name: job.name.clone(),
            state: cluster::JobState::Running,
            submitted_ms: 0,
            stats: Default::default(),
            members: [(1, member)].into(),
            error: None,
            job: Some(Arc::new(job)),
        }
    }

    const JOB_TAIL: &str = r#"
[parse]
format = "nginx"
[[metric]]
name = "lines_total"
kind = "counter"
[[sink]]
kind = "stdout"
series = "hosts"
"#;

    #[test]
    fn a_kafka_job_gets_no_warning_about_files() {
        let kafka = format!(
            "name = \"k\"\n[source]\nkind = \"kafka\"\nbrokers = \"k1:9092\"\ntopic = \"logs\"\n{JOB_TAIL}"
        );
        // Member 1 reads its partitions: no file group, as every kafka job's.
        assert_eq!(
            no_file_warnings(&job_info(&kafka, 0), 2),
            Vec::<String>::new()
        );
        // The same report for a file job still warns (the check above can fail).
        let dir = tempfile::tempdir().unwrap();
        let file = format!(
            "name = \"f\"\n[source]\nkind = \"file\"\ninclude = [\"{}/*.log\"]\n{JOB_TAIL}",
            dir.path().display()
        );
        let warnings = no_file_warnings(&job_info(&file, 0), 2);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("match no file on member 1")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_kafka_jobs_status_counts_every_members_skipped_and_lost_records() {
        let kafka = format!(
            "name = \"k\"\n[source]\nkind = \"kafka\"\nbrokers = \"k1:9092\"\ntopic = \"logs\"\n{JOB_TAIL}"
        );
        let mut j = job_info(&kafka, 0);
        j.stats.kafka_lost_lines = 1;
        j.stats.kafka_bad_records = 10;
        j.stats.kafka_heartbeats_ahead = 100;
        let member = j.members.get_mut(&1).unwrap();
        member.kafka_lost_lines = 2;
        member.kafka_bad_records = 20;
        member.kafka_heartbeats_ahead = 200;
        let e = errors(&j, &j.cluster_stats());
        let counts = (
            e["kafka_lost_lines"],
            e["kafka_bad_records"],
            e["kafka_heartbeats_ahead"],
        );
        assert_eq!(counts, (3, 30, 300));
        // A file job's status has no kafka keys.
        let file = format!(
            "name = \"f\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n{JOB_TAIL}"
        );
        let e = errors(&job_info(&file, 1), &MemberStats::default());
        assert!(!e.keys().any(|k| k.starts_with("kafka_")), "{e:?}");
    }
}
