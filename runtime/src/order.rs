//! The order in which training sees its samples, shared by every backend.
//!
//! Epoch `e` permutes the previous epoch's order with a generator derived from the
//! plan's seed and `"epoch e"` (the shuffles compose: epoch 0 starts from `0..n`).
//! Batches are consecutive chunks of `batch` samples of that order; the last one of an
//! epoch may be partial. The clear and the encrypted training loops both take their
//! order from here, so they see the same samples in the same order, and a resumed
//! encrypted run can recompute where it stopped from `(epoch, step)` alone.

use crate::rng::SplitMix;
use std::ops::Range;

/// The sample order of `epoch` for `n` samples.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for e in 0..=epoch {
        shuffle_epoch(seed, e, &mut order);
    }
    order
}

/// Advance `order` (the order of epoch `epoch − 1`, or `0..n` for epoch 0) to `epoch`.
pub fn shuffle_epoch(seed: u64, epoch: usize, order: &mut [usize]) {
    SplitMix::derive(seed, &format!("epoch {epoch}")).shuffle(order);
}

/// Index ranges (into an epoch's order) of its batches, the last possibly partial.
pub fn batches(n: usize, batch: usize) -> impl Iterator<Item = Range<usize>> {
    let batch = batch.max(1);
    (0..n.div_ceil(batch)).map(move |b| b * batch..((b + 1) * batch).min(n))
}

/// Number of batches (steps) per epoch.
pub fn steps_per_epoch(n: usize, batch: usize) -> usize {
    n.div_ceil(batch.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_compose_and_are_permutations() {
        let mut running: Vec<usize> = (0..37).collect();
        for e in 0..4 {
            shuffle_epoch(9, e, &mut running);
            let o = epoch_order(9, e, 37);
            assert_eq!(o, running, "epoch {e}");
            let mut sorted = o.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..37).collect::<Vec<_>>());
        }
        assert_ne!(epoch_order(9, 0, 37), epoch_order(9, 1, 37));
    }

    #[test]
    fn batches_cover_the_epoch_with_a_partial_tail() {
        let b: Vec<_> = batches(10, 4).collect();
        assert_eq!(b, vec![0..4, 4..8, 8..10]);
        assert_eq!(steps_per_epoch(10, 4), 3);
        assert_eq!(batches(0, 4).count(), 0);
        assert_eq!(batches(8, 4).count(), 2);
    }
}
