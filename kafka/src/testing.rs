//! A real Kafka-compatible broker for integration tests: tansu, started on a port the OS
//! picked, its log kept in SQLite under a temporary folder (so a restart keeps the
//! topic's records), stopped on drop.
//!
//! The program is `TIDEMARK_TANSU` (set by `scripts/test`, which installs it when
//! missing), else `tansu` on PATH. A test that needs the broker and cannot start it
//! panics saying so: it never skips.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long a broker gets to start answering: generous, for a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(120);

/// The index tansu 0.6.0's `header` table lacks: its fetch looks headers up by
/// (topition, offset_id).
pub const HEADER_INDEX: &str =
    "create index if not exists tidemark_header_record on header (topition, offset_id)";

/// A running tansu broker.
pub struct Broker {
    program: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker on a free port and waits until it answers a metadata request.
    pub fn start() -> Broker {
        let program = program();
        let dir = tempfile::Builder::new()
            .prefix("tidemark-tansu.")
            .tempdir()
            .expect("a temporary folder for the broker");
        let mut broker = Broker {
            program,
            dir,
            port: 0,
            child: None,
        };
        // The port is free when picked, but another process can take it before tansu
        // binds it: try a few.
        for _ in 0..5 {
            broker.port = free_port();
            if broker.spawn_and_wait() {
                return broker;
            }
        }
        panic!(
            "tansu did not start; its log: {}\n{}",
            broker.log_path().display(),
            broker.log()
        );
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL), as a crash would. Its stored records stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port, with the records it had.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_DEADLINE;
        while !self.spawn_and_wait() {
            assert!(
                Instant::now() < deadline,
                "tansu did not restart on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Creates `topic` with `partitions` partitions and waits until its metadata shows
    /// them all.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("an admin client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = runtime
            .block_on(admin.create_topics([&new], &AdminOptions::new()))
            .expect("create_topics");
        for result in results {
            result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
        }
        let deadline = Instant::now() + START_DEADLINE;
        while self.partitions(topic) != partitions {
            assert!(
                Instant::now() < deadline,
                "topic {topic} never showed {partitions} partitions"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many partitions `topic` has (0 if the broker does not know it).
    pub fn partitions(&self, topic: &str) -> i32 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("a metadata client");
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len() as i32),
            Err(_) => 0,
        }
    }

    /// The broker's output so far (for a failing test's message).
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path()) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    /// Spawns tansu on `self.port`; true once it answers, false if it exited.
    fn spawn_and_wait(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the broker's log file");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(&self.program)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            // tansu reads `sqlite:///abs/path` as relative to its folder: run it in the
            // temporary folder and name the file only.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.answers() {
                self.child = Some(child);
                // tansu has created its tables once it answers.
                self.index_headers();
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answers(&self) -> bool {
        let consumer: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create();
        consumer.is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(5)).is_ok())
    }

    /// tansu's SQLite file.
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("tansu.db")
    }

    /// Adds [`HEADER_INDEX`] (a no-op after a restart: the file keeps it). tansu keeps the
    /// file open in WAL mode, which lets a second connection change the schema; tansu's
    /// prepared statements are prepared again by SQLite when they see the change.
    fn index_headers(&self) {
        let db = rusqlite::Connection::open(self.database())
            .unwrap_or_else(|e| panic!("opening tansu's {}: {e}", self.database().display()));
        db.busy_timeout(START_DEADLINE)
            .expect("a busy timeout for tansu's database");
        db.execute_batch(HEADER_INDEX).unwrap_or_else(|e| {
            panic!(
                "adding the header index to tansu's {}: {e}",
                self.database().display()
            )
        });
    }

    /// The folder holding the broker's storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("TIDEMARK_TANSU") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test needs the tansu broker: run it through scripts/test (which installs \
             it), or `cargo install tansu --locked --features libsql,dynostore` and set \
             TIDEMARK_TANSU to the binary"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
