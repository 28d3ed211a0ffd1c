//! How many writes one reconcile keeps in flight.

use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// Writes one reconcile has in flight at a time. One write after the other, an org of 10,000
/// members takes 30,000 round trips to converge; a bounded number in parallel keeps the API server
/// busy without letting one org open hundreds of connections (the controller runs up to 8
/// reconciles at once).
pub(super) const WRITE_CONCURRENCY: usize = 16;

/// Writes in flight, at most [`WRITE_CONCURRENCY`]; each `push` waits for a free slot and returns
/// the results of the writes that finished meanwhile.
pub(super) struct Writes<F: std::future::Future> {
    in_flight: FuturesUnordered<F>,
}

impl<F: std::future::Future> Writes<F> {
    pub(super) fn new() -> Self {
        Writes {
            in_flight: FuturesUnordered::new(),
        }
    }

    pub(super) async fn push(&mut self, write: F) -> Vec<F::Output> {
        let mut done = Vec::new();
        while self.in_flight.len() >= WRITE_CONCURRENCY {
            done.extend(self.in_flight.next().await);
        }
        self.in_flight.push(write);
        done
    }

    pub(super) async fn finish(mut self) -> Vec<F::Output> {
        let mut done = Vec::new();
        while let Some(r) = self.in_flight.next().await {
            done.push(r);
        }
        done
    }
}
