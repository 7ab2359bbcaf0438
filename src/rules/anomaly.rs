//! A moving window of a metric's last values: its average, and whether a new value is an
//! anomaly (further than k standard deviations from that average).

use std::collections::VecDeque;

pub struct Window {
    values: VecDeque<f64>,
    capacity: usize,
    sum: f64,
    sum_sq: f64,
}

impl Window {
    pub fn new(capacity: usize) -> Window {
        Window {
            values: VecDeque::with_capacity(capacity),
            capacity,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    pub fn push(&mut self, value: f64) {
        if self.values.len() == self.capacity {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.values.push_back(value);
        self.sum += value;
        self.sum_sq += value * value;
    }

    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }

    fn std_dev(&self) -> f64 {
        let n = self.values.len() as f64;
        let mean = self.mean();
        (self.sum_sq / n - mean * mean).max(0.0).sqrt()
    }

    /// The bound `value` crosses (mean ± k·σ), once the window holds `min_samples` values.
    pub fn anomaly(&self, value: f64, k: f64, min_samples: usize) -> Option<f64> {
        if self.values.len() < min_samples {
            return None;
        }
        let (mean, sd) = (self.mean(), self.std_dev());
        // A flat signal has σ = 0; require a change beyond rounding noise.
        let band = (k * sd).max(1e-9 * mean.abs().max(1.0));
        if value > mean + band {
            Some(mean + band)
        } else if value < mean - band {
            Some(mean - band)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_far_from_the_average_is_an_anomaly() {
        let mut w = Window::new(30);
        for i in 0..20 {
            w.push(25.0 + (i % 3) as f64 * 0.1);
        }
        assert!(w.anomaly(25.1, 3.0, 10).is_none());
        let bound = w.anomaly(40.0, 3.0, 10).expect("anomaly");
        assert!(bound > 25.1 && bound < 26.0, "{bound}");
        assert!(
            Window::new(30).anomaly(40.0, 3.0, 10).is_none(),
            "too few samples"
        );
    }
}
