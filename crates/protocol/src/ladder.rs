//! Durations as configs write them, and Redox's retry ladder (docs/PROTOCOL.md section 6).

use std::time::Duration;

/// Parses `"250ms"`, `"30s"`, `"2m"`, `"1h"` or `"30d"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86_400).map(Duration::from_secs),
        _ => None,
    }
}

/// When to retry a failed delivery: step `n` is the wait before attempt `n + 1`; the last step
/// repeats for ever (until it succeeds or an operator stops it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryLadder(Vec<Duration>);

impl RetryLadder {
    /// Redox's: immediately, +10 s, +10 s, +20 s, +30 s, +50 s, +80 s, +120 s, then every 120 s.
    pub fn redox() -> Self {
        RetryLadder(
            [0, 10, 10, 20, 30, 50, 80, 120]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    /// A ladder from its steps; `None` when there are none.
    pub fn new(steps: Vec<Duration>) -> Option<Self> {
        (!steps.is_empty()).then_some(RetryLadder(steps))
    }

    /// The wait after the `failures`-th failed attempt (1-based).
    pub fn delay_after(&self, failures: usize) -> Duration {
        let index = failures.saturating_sub(1).min(self.0.len() - 1);
        self.0[index]
    }

    pub fn steps(&self) -> &[Duration] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(5 * 86_400)));
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("99999999999999999d"), None);
    }

    #[test]
    fn redox_ladder_repeats_its_last_step() {
        let ladder = RetryLadder::redox();
        assert_eq!(ladder.delay_after(1), Duration::ZERO);
        assert_eq!(ladder.delay_after(2), Duration::from_secs(10));
        assert_eq!(ladder.delay_after(8), Duration::from_secs(120));
        assert_eq!(ladder.delay_after(100), Duration::from_secs(120));
        assert!(RetryLadder::new(vec![]).is_none());
    }
}
