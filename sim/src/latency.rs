//! Per-operation latency for `strata bench`: an HDR histogram (the `hdrhistogram` crate,
//! 3 significant digits) per thread, merged per workload, reported as db_bench users expect
//! (p50, p99, p99.9, max).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Instant;

/// Latencies of one thread (or, merged, of a workload), in nanoseconds.
pub struct Latency {
    histogram: Histogram<u64>,
}

/// The percentiles of a workload's latencies, in microseconds.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// The slowest operation.
    pub max_us: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram for latencies from 1 ns to an hour (longer ones count as an hour).
    pub fn new() -> Latency {
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .expect("bounds and 3 significant digits are in range");
        Latency { histogram }
    }

    /// Records one operation that started at `start` and ends now.
    pub fn record_since(&mut self, start: Instant) {
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos.max(1));
    }

    /// Adds another thread's latencies.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both, so adding cannot go out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Operations recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles, in microseconds (all 0 when nothing was recorded).
    pub fn percentiles(&self) -> Percentiles {
        if self.histogram.is_empty() {
            return Percentiles::default();
        }
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        Percentiles {
            p50_us: micros(self.histogram.value_at_quantile(0.5)),
            p99_us: micros(self.histogram.value_at_quantile(0.99)),
            p999_us: micros(self.histogram.value_at_quantile(0.999)),
            max_us: micros(self.histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut one = Latency::new();
        let mut two = Latency::new();
        // Past the 2,048 ns a default histogram would have saturated at.
        for micros in 1..=1000u64 {
            let target = if micros % 2 == 0 { &mut one } else { &mut two };
            target.histogram.record(micros * 1000).unwrap();
        }
        one.merge(&two);
        assert_eq!(one.count(), 1000);
        let p = one.percentiles();
        let near = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
        assert!(near(p.p50_us, 500.0), "{p:?}");
        assert!(near(p.p99_us, 990.0), "{p:?}");
        assert!(near(p.p999_us, 999.0), "{p:?}");
        assert!(near(p.max_us, 1000.0), "{p:?}");
        assert_eq!(Latency::new().percentiles(), Percentiles::default());
    }
}
