//! `per_window`: gather a stream's records by window and hand each window's batch,
//! once complete, to a function.
//!
//! A window (a dataflow timestamp) is complete when the input frontier has passed
//! it; its records are then processed together and the results sent at the same
//! timestamp. Windows complete in ascending order.
//!
//! The window a batch travels at (`window_of`) and one window's batches as one
//! `Vec` (`concat`) are shared with the collect stage, which gathers windows
//! itself.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;

use crate::time::WindowTime;

/// Extension trait for a stream of records stamped with their window: gathers
/// each window's records and hands them, once the window is complete, to a
/// function. Host merge, the `max_series` cut and rollup are built on it.
pub trait PerWindow<'scope, D>: Sized {
    /// Applies `f` to each complete window's start and records (after `pact`
    /// routes them), and sends what `f` returns at that window's time. `name` is
    /// the operator's name in timely's logs and in the error logged for a batch
    /// that carries no window (a bug; such records are reported, not dropped quietly).
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::channels::pact::Pipeline;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Extract;
    /// use tidemark_engine::operators::per_window::PerWindow;
    ///
    /// let batches = timely::example(|scope| {
    ///     // Every value at time (window) 0; sum the window once it is complete.
    ///     vec![1u64, 2, 5]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .per_window(Pipeline, "Sum", |_window, batch: Vec<u64>| {
    ///             vec![batch.iter().sum::<u64>()]
    ///         })
    ///         .capture()
    /// });
    /// assert_eq!(batches.extract(), vec![(0, vec![8])]);
    /// ```
    fn per_window<O, P, F>(self, pact: P, name: &str, f: F) -> Stream<'scope, WindowTime, Vec<O>>
    where
        O: Clone + 'static,
        P: ParallelizationContract<WindowTime, Vec<D>>,
        F: FnMut(WindowTime, Vec<D>) -> Vec<O> + 'static;

    /// As [`PerWindow::per_window`], but `f` gets the window's records as the
    /// batches they came in (in arrival order), not copied into one `Vec`: for
    /// a stage that reads them once in order and may not need them together.
    fn per_window_batches<O, P, F>(
        self,
        pact: P,
        name: &str,
        f: F,
    ) -> Stream<'scope, WindowTime, Vec<O>>
    where
        O: Clone + 'static,
        P: ParallelizationContract<WindowTime, Vec<D>>,
        F: FnMut(WindowTime, Vec<Vec<D>>) -> Vec<O> + 'static;
}

impl<'scope, D: Clone + 'static> PerWindow<'scope, D> for Stream<'scope, WindowTime, Vec<D>> {
    fn per_window<O, P, F>(
        self,
        pact: P,
        name: &str,
        mut f: F,
    ) -> Stream<'scope, WindowTime, Vec<O>>
    where
        O: Clone + 'static,
        P: ParallelizationContract<WindowTime, Vec<D>>,
        F: FnMut(WindowTime, Vec<D>) -> Vec<O> + 'static,
    {
        self.per_window_batches(pact, name, move |window, batches| {
            f(window, concat(batches))
        })
    }

    fn per_window_batches<O, P, F>(
        self,
        pact: P,
        name: &str,
        mut f: F,
    ) -> Stream<'scope, WindowTime, Vec<O>>
    where
        O: Clone + 'static,
        P: ParallelizationContract<WindowTime, Vec<D>>,
        F: FnMut(WindowTime, Vec<Vec<D>>) -> Vec<O> + 'static,
    {
        let label = name.to_string();
        self.unary_frontier(pact, name, move |_cap, _info| {
            let mut pending: BTreeMap<WindowTime, (Capability<WindowTime>, Vec<Vec<D>>)> =
                BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let Some(window) = window_of(&cap, &label) else {
                        return;
                    };
                    let slot = pending
                        .entry(window)
                        .or_insert_with(|| (cap.delayed(&window, 0), Vec::new()));
                    slot.1.extend(data.map(std::mem::take));
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (window, (cap, batches)) = entry.remove_entry();
                    // What `f` made goes on as the one container it is: pushed
                    // one by one, each record would be copied again into the
                    // builder's small batches (~30k per window of a wide label).
                    let mut records = f(window, batches);
                    if !records.is_empty() {
                        output.session(&cap).give_container(&mut records);
                    }
                }
            }
        })
    }
}

/// As [`PerWindow::per_window`] for a stage with two kinds of results: `f`'s
/// two `Vec`s go on, each as the one container it is, on two streams. In
/// place of a stream of an enum split by `ok_err`, which moves every record
/// again, one by one, into small containers (a window of a wide label's ~30k
/// host records a second time, in ~30 fresh allocations).
pub(crate) fn per_window_split<'scope, D, O1, O2, P, F>(
    stream: Stream<'scope, WindowTime, Vec<D>>,
    pact: P,
    name: &str,
    mut f: F,
) -> (
    Stream<'scope, WindowTime, Vec<O1>>,
    Stream<'scope, WindowTime, Vec<O2>>,
)
where
    D: Clone + 'static,
    O1: Clone + 'static,
    O2: Clone + 'static,
    P: ParallelizationContract<WindowTime, Vec<D>>,
    F: FnMut(WindowTime, Vec<D>) -> (Vec<O1>, Vec<O2>) + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_string(), stream.scope());
    let mut input = builder.new_input(stream, pact);
    let (first, first_stream) = builder.new_output::<Vec<O1>>();
    let (second, second_stream) = builder.new_output::<Vec<O2>>();
    let mut first = OutputBuilder::from(first);
    let mut second = OutputBuilder::from(second);
    let label = name.to_string();
    builder.build(move |initial| {
        // Each window is sent under capabilities taken from its input.
        drop(initial);
        type Pending<D> = (Capability<WindowTime>, Capability<WindowTime>, Vec<Vec<D>>);
        let mut pending: BTreeMap<WindowTime, Pending<D>> = BTreeMap::new();
        move |frontiers| {
            input.for_each_stamp(|cap, data| {
                let Some(window) = window_of(&cap, &label) else {
                    return;
                };
                let slot = pending.entry(window).or_insert_with(|| {
                    (cap.delayed(&window, 0), cap.delayed(&window, 1), Vec::new())
                });
                slot.2.extend(data.map(std::mem::take));
            });
            let mut first = first.activate();
            let mut second = second.activate();
            while let Some(entry) = pending.first_entry() {
                if frontiers.first().is_some_and(|f| f.less_equal(entry.key())) {
                    break;
                }
                let (window, (cap1, cap2, batches)) = entry.remove_entry();
                let (mut a, mut b) = f(window, concat(batches));
                if !a.is_empty() {
                    first.session(&cap1).give_container(&mut a);
                }
                if !b.is_empty() {
                    second.session(&cap2).give_container(&mut b);
                }
            }
        }
    });
    (first_stream, second_stream)
}

/// The window a batch travels at. Timely (0.32) sends a batch under a *stamp*, a
/// set of times; every operator of a job sends under one capability, so each
/// stamp holds exactly one window, and its least time is that window. A batch
/// sent under no capability belongs to no window: no operator here sends one,
/// and if one ever did it is reported, never dropped quietly.
pub(crate) fn window_of(cap: &InputCapability<WindowTime>, operator: &str) -> Option<WindowTime> {
    let window = cap.least().copied();
    if window.is_none() {
        tracing::error!(
            "{operator}: received a batch sent without a timestamp (a bug in the \
             dataflow); its records belong to no window and are not counted"
        );
    }
    window
}

/// One window's batches as one `Vec`, allocated once at its final size: appending
/// each batch as it came would hold up to twice a large window's records.
pub(crate) fn concat<D>(batches: Vec<Vec<D>>) -> Vec<D> {
    if batches.len() == 1 {
        return batches.into_iter().next().unwrap_or_default();
    }
    let mut all = Vec::with_capacity(batches.iter().map(Vec::len).sum());
    for batch in batches {
        all.extend(batch);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::capture::{Capture, Event};
    use timely::dataflow::operators::Input;

    type Events = Receiver<Event<WindowTime, Vec<u64>>>;

    /// Each window's two results reach their own streams at the window's
    /// time, once it is complete, each as the one container `f` made.
    #[test]
    fn a_split_windows_two_results_go_on_whole_on_two_streams() {
        let (send, got) = std::sync::mpsc::channel::<(Events, Events)>();
        timely::execute_directly(move |worker| {
            let mut input = worker.dataflow::<WindowTime, _, _>(|scope| {
                let (input, numbers) = scope.new_input::<Vec<u64>>();
                let (evens, odds) = per_window_split(numbers, Pipeline, "Split", |_, all| {
                    all.into_iter().partition::<Vec<u64>, _>(|n| n % 2 == 0)
                });
                send.send((evens.capture(), odds.capture())).unwrap();
                input
            });
            // Window 0 in batches of one, then window 10.
            for n in [1u64, 2, 3, 4] {
                input.send(n);
                input.flush();
                worker.step();
            }
            input.advance_to(10);
            input.send(5);
        });
        let messages = |events: Events| {
            events
                .try_iter()
                .filter_map(|e| match e {
                    Event::Messages(t, batch) => Some((t.elements().to_vec(), batch)),
                    Event::Progress(_) => None,
                })
                .collect::<Vec<_>>()
        };
        let (evens, odds) = got.recv().unwrap();
        assert_eq!(messages(evens), vec![(vec![0], vec![2, 4])]);
        assert_eq!(
            messages(odds),
            vec![(vec![0], vec![1, 3]), (vec![10], vec![5])]
        );
    }
}
