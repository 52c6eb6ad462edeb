//! A worker that panics must end the run, not leave the other workers waiting
//! for ever: timely's workers wait for each other's progress, and a worker
//! thread that unwound sends none. Each worker runs its loop through
//! [`PanicWatch::catching`]: a panic there is caught, the worker drops its
//! dataflows (timely would otherwise keep stepping them once the closure
//! returns) and returns the panic's message; the other workers see the flag at
//! their next step ([`PanicWatch::abandon_if_panicked`]), drop theirs and
//! return, and the run reports the panic as its error.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use timely::worker::Worker;

/// Shared by a run's workers: whether one of them panicked.
#[derive(Clone, Default)]
pub(crate) struct PanicWatch(Arc<AtomicBool>);

impl PanicWatch {
    /// Runs a worker's `body`; a panic in it is returned as its message, with
    /// the worker's dataflows dropped and the other workers told.
    pub(crate) fn catching<T>(
        &self,
        worker: &mut Worker,
        body: impl FnOnce(&mut Worker) -> T,
    ) -> Result<T, String> {
        // Unwind safety: after a panic nothing of the worker's dataflows is
        // used again; they are dropped below.
        match std::panic::catch_unwind(AssertUnwindSafe(|| body(&mut *worker))) {
            Ok(t) => Ok(t),
            Err(payload) => {
                self.0.store(true, Ordering::SeqCst);
                drop_dataflows(worker);
                Err(format!("panicked: {}", message(payload.as_ref())))
            }
        }
    }

    /// Whether another worker panicked: if so, `worker` drops its dataflows
    /// (the caller then returns from its closure).
    pub(crate) fn abandon_if_panicked(&self, worker: &mut Worker) -> bool {
        if !self.0.load(Ordering::SeqCst) {
            return false;
        }
        drop_dataflows(worker);
        true
    }
}

fn drop_dataflows(worker: &mut Worker) {
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}

/// A panic's message (`panic!` gives a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}
