//! A real Kafka-compatible broker for integration tests: tansu, started on a port the OS
//! picked, its log kept in SQLite under a temporary folder (so a restart keeps the
//! topic's records), stopped on drop. Benchmarks may ask for tansu's in-memory storage
//! instead ([`Storage::Memory`], [`Broker::start_with`]): tansu 0.6.0's SQLite engine
//! scans its tables on every fetch and stops answering reads beyond a few thousand
//! records (benches/README.md, "Issue 14: end to end").
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

/// Where the broker keeps its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// SQLite in the broker's temporary folder: [`Broker::restart`] keeps the records,
    /// which the crash tests need. Fetches slow down with the table's size.
    #[default]
    Sqlite,
    /// tansu's in-memory engine (`memory://tansu/`, its default): serves reads at the
    /// sizes benchmarks need, but the records die with the process, so after
    /// [`Broker::restart`] the broker is empty (topics included).
    Memory,
}

impl Storage {
    /// The `--storage-engine` URL; tansu reads `sqlite:///abs/path` as relative to its
    /// folder, so the broker runs in its temporary folder and names the file only.
    fn url(self) -> &'static str {
        match self {
            Storage::Sqlite => "sqlite://tansu.db",
            Storage::Memory => "memory://tansu/",
        }
    }
}

/// A running tansu broker.
pub struct Broker {
    program: PathBuf,
    storage: Storage,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker (SQLite storage) on a free port and waits until it answers a
    /// metadata request.
    pub fn start() -> Broker {
        Broker::start_with(Storage::Sqlite)
    }

    /// [`Broker::start`] with the given storage.
    pub fn start_with(storage: Storage) -> Broker {
        let program = program();
        let dir = tempfile::Builder::new()
            .prefix("tidemark-tansu.")
            .tempdir()
            .expect("a temporary folder for the broker");
        let mut broker = Broker {
            program,
            storage,
            dir,
            port: 0,
            child: None,
        };
        // The port is free when picked, but another process can take it before tansu
        // binds it: try a few.
        for _ in 0..5 {
            release_port(broker.port);
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

    /// Starts the broker again on the same port, with the records it had ([`Storage::Sqlite`];
    /// a [`Storage::Memory`] broker comes back empty).
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

    /// Times this broker's tansu said it was ready (its log is kept across restarts).
    fn times_ready(&self) -> usize {
        self.log().matches("ready in ").count()
    }

    /// Spawns tansu on `self.port`; true once it answers, false if it exited.
    ///
    /// Whoever answers on the port must be this tansu: another test's broker can
    /// take the port while this one restarts on it, and this tansu then exits
    /// (address in use) while the other answers, so the two tests would share one
    /// broker (seen: "TopicAlreadyExists", then a produce timing out). So it must
    /// still run after it answered, and have said in its log that it is ready.
    fn spawn_and_wait(&mut self) -> bool {
        let ready_before = self.times_ready();
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
            .args(["--storage-engine", self.storage.url()])
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
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.answers()
                && self.times_ready() > ready_before
            {
                if !matches!(child.try_wait(), Ok(None)) {
                    return false; // exited: what answered is another broker
                }
                self.child = Some(child);
                // tansu has created its tables once it answers.
                if self.storage == Storage::Sqlite {
                    self.index_headers();
                }
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
        release_port(self.port);
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

/// Ports of this process's brokers: each keeps its port for its life, also
/// while it restarts, when the port is briefly free and the OS may hand it to
/// another test's new broker.
static PORTS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A free port no broker of this process holds, now held by the caller's.
fn free_port() -> u16 {
    let mut held = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !held.contains(&port) {
            held.push(port);
            return port;
        }
    }
}

/// `port` is no broker's any more.
fn release_port(port: u16) {
    let mut held = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|&p| p != port);
}
