//! Cost counters of the server: PBS are counted at the bootstrap call site, time is
//! summed per kind of work (CPU time over all threads).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default, Debug)]
pub struct Stats {
    pbs: AtomicU64,
    pbs_ns: AtomicU64,
    keyswitch_ns: AtomicU64,
    pack_ns: AtomicU64,
    external_product_ns: AtomicU64,
    samples: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    pub pbs: u64,
    pub pbs_time: Duration,
    pub keyswitch_time: Duration,
    pub pack_time: Duration,
    pub external_product_time: Duration,
    pub samples: u64,
}

#[derive(Clone, Copy)]
pub(crate) enum Work {
    Keyswitch,
    Pack,
    ExternalProduct,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        StatsSnapshot {
            pbs: self.pbs.load(Ordering::Relaxed),
            pbs_time: d(&self.pbs_ns),
            keyswitch_time: d(&self.keyswitch_ns),
            pack_time: d(&self.pack_ns),
            external_product_time: d(&self.external_product_ns),
            samples: self.samples.load(Ordering::Relaxed),
        }
    }

    /// Count `count` bootstraps that started at `start`.
    pub(crate) fn record_pbs(&self, count: usize, start: Instant) {
        self.pbs.fetch_add(count as u64, Ordering::Relaxed);
        self.pbs_ns.fetch_add(nanos(start), Ordering::Relaxed);
    }

    pub(crate) fn record(&self, work: Work, start: Instant) {
        let counter = match work {
            Work::Keyswitch => &self.keyswitch_ns,
            Work::Pack => &self.pack_ns,
            Work::ExternalProduct => &self.external_product_ns,
        };
        counter.fetch_add(nanos(start), Ordering::Relaxed);
    }

    pub(crate) fn record_sample(&self) {
        self.samples.fetch_add(1, Ordering::Relaxed);
    }
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
