//! Percentiles of a set of durations.

use serde::{Deserialize, Serialize};

/// p50/p90/p99 (nearest rank) and mean, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarizes durations given in microseconds; all zero when empty.
    pub fn of_micros(samples: &mut [f64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[i.clamp(1, samples.len()) - 1] / 1000.0
        };
        Summary {
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            mean: samples.iter().sum::<f64>() / samples.len() as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(|i| f64::from(i) * 1000.0).collect();
        let s = Summary::of_micros(&mut v);
        assert_eq!((s.p50, s.p90, s.p99), (50.0, 90.0, 99.0));
        assert!((s.mean - 50.5).abs() < 1e-9);
        let mut one = vec![2500.0];
        assert_eq!(Summary::of_micros(&mut one).p99, 2.5);
    }
}
