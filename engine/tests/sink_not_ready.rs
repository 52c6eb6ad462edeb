//! Worker 0 never blocks on a sink: while a sink is not `ready()` the
//! collector keeps closed windows pending (and the dataflow alive, even after
//! the input ended), hands them over in order once it is, and a stop counts
//! the ones still held.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tidemark_engine::operators::collect::{CollectWindows, Collector};
use tidemark_engine::sink::{BoxError, Sink, Sinks};
use tidemark_engine::stats::JobStats;
use tidemark_engine::{ClosedWindow, Labels, Origin, Series, Value};
use timely::dataflow::operators::Input;

/// Takes windows only while `ready`; records their starts and whether it was
/// finished.
#[derive(Clone, Default)]
struct Gate {
    ready: Arc<AtomicBool>,
    got: Arc<Mutex<(Vec<i64>, bool)>>,
}

impl Sink for Gate {
    fn describe(&self) -> String {
        "gate".to_string()
    }
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        assert!(
            self.ready.load(Ordering::SeqCst),
            "handed a window while not ready"
        );
        self.got.lock().unwrap().0.push(w.start_ms);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), BoxError> {
        self.got.lock().unwrap().1 = true;
        Ok(())
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

fn hit(n: u64) -> Series {
    Series {
        record: Arc::from("hits"),
        labels: Labels::from_pairs(&[("host", "web1")]),
        value: Value::Int(n),
        origin: Origin::Host,
    }
}

#[test]
fn windows_wait_for_a_ready_sink_even_past_the_end_of_input() {
    let gate = Gate::default();
    let sink = gate.clone();
    let error = Arc::new(Mutex::new(None));
    let failure = error.clone();
    timely::execute_directly(move |worker| {
        let collector = Collector {
            output: Sinks::new(vec![Box::new(sink.clone())]),
            committer: None,
            alerts: None,
            input_end: Default::default(),
            print_from: i64::MIN,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(JobStats::default()));
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, records) = scope.new_input::<Vec<Series>>();
            records.collect_windows(60_000, Some(collector), failure, stop, stats);
            input
        });
        input.send(hit(1));
        input.advance_to(60_000);
        input.send(hit(2));
        input.advance_to(120_000);
        // The input ends while the sink is not ready.
        drop(input);
        for _ in 0..100 {
            worker.step();
        }
        assert!(sink.got.lock().unwrap().0.is_empty());
        sink.ready.store(true, Ordering::SeqCst);
        // The dataflow is still there (held open by the collector): it hands
        // both windows over, in order, and finishes the sink.
        while worker.step_or_park(Some(std::time::Duration::from_millis(5))) {}
    });
    assert!(error.lock().unwrap().is_none());
    assert_eq!(*gate.got.lock().unwrap(), (vec![0, 60_000], true));
}

#[test]
fn a_stop_counts_the_windows_held_for_a_sink_that_was_not_ready() {
    let gate = Gate::default();
    let sink = gate.clone();
    let stats = Arc::new(Mutex::new(JobStats::default()));
    let shared = stats.clone();
    timely::execute_directly(move |worker| {
        let collector = Collector {
            output: Sinks::new(vec![Box::new(sink.clone())]),
            committer: None,
            alerts: None,
            input_end: Default::default(),
            print_from: i64::MIN,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let stopping = stop.clone();
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, records) = scope.new_input::<Vec<Series>>();
            records.collect_windows(60_000, Some(collector), error, stop, shared);
            input
        });
        input.send(hit(1));
        input.advance_to(60_000);
        input.send(hit(2));
        input.advance_to(120_000);
        input.send(hit(3));
        for _ in 0..100 {
            worker.step();
        }
        stopping.store(true, Ordering::SeqCst);
        drop(input);
        while worker.step_or_park(Some(std::time::Duration::from_millis(5))) {}
    });
    assert!(gate.got.lock().unwrap().0.is_empty());
    // Windows 0 and 60 000 were closed and held; 120 000 was still open.
    assert_eq!(stats.lock().unwrap().windows_held_at_stop, 2);
}
