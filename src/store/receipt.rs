//! Receipts: how a connection learns that its messages are on disk. Each connection owns a
//! `Receipts` counter and numbers its messages 1, 2, 3...; every message it hands to ingest
//! carries a `Receipt`, which travels with the batch, and the writer raises the counter once
//! the transaction holding it has committed. Messages of one connection reach the writer in
//! order, so "committed up to N" is all a connection needs to know.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One connection's commit counter.
#[derive(Debug, Default)]
pub struct Receipts {
    committed: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Receipts {
    /// The highest message number committed so far (0: none).
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Resolves after the counter moves (at once if it moved since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// A receipt for message number `seq` of this connection.
    pub fn receipt(self: &Arc<Self>, seq: u64) -> Receipt {
        Receipt {
            receipts: self.clone(),
            seq,
        }
    }
}

/// Proof of handing over message `seq`; released by the writer after its commit.
#[derive(Debug, Clone)]
pub struct Receipt {
    receipts: Arc<Receipts>,
    seq: u64,
}

/// Tells every connection in `receipts` how far its messages are committed.
pub fn release(receipts: &[Receipt]) {
    let mut last: Option<&Arc<Receipts>> = None;
    for r in receipts {
        r.receipts.committed.fetch_max(r.seq, Ordering::AcqRel);
        if let Some(l) = last.filter(|l| !Arc::ptr_eq(l, &r.receipts)) {
            l.changed.notify_one();
        }
        last = Some(&r.receipts);
    }
    if let Some(l) = last {
        l.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn release_raises_each_counter_to_its_highest_receipt() {
        let (a, b) = (Arc::new(Receipts::default()), Arc::new(Receipts::default()));
        release(&[a.receipt(1), b.receipt(1), a.receipt(2), a.receipt(3)]);
        assert_eq!((a.committed(), b.committed()), (3, 1));
        // Both were told, so neither waits.
        a.changed().await;
        b.changed().await;
    }
}
