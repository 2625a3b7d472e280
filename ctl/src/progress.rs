//! A one-line progress bar on standard error, with rate and ETA:
//!
//! `replaying  [########------------]  41%  41,000/100,000  12,345 events/s  ETA 0:04`
//!
//! Drawn at most ten times a second, and only when asked for (`--progress`, by default when
//! standard error is a terminal), so scripts get clean output.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

pub struct Progress {
    enabled: bool,
    label: String,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            label: String::new(),
            unit: "events",
            total: 0,
            done: 0,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Starts a new phase of `total` items.
    pub fn start(&mut self, label: &str, unit: &'static str, total: u64) {
        self.label = label.to_owned();
        self.unit = unit;
        self.total = total;
        self.done = 0;
        self.started = Instant::now();
        self.drawn = None;
        self.draw(true);
    }

    /// Grows the total (more arrived while catching up).
    pub fn extend_to(&mut self, total: u64) {
        self.total = self.total.max(total);
    }

    pub fn advance(&mut self, items: u64) {
        self.done += items;
        self.draw(false);
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        self.draw(true);
        if self.enabled {
            eprintln!();
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .drawn
                .is_some_and(|at| now - at < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(now);
        let line = render(
            &self.label,
            self.unit,
            self.done,
            self.total,
            self.started.elapsed(),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }
}

/// The bar's text, without control characters.
pub fn render(label: &str, unit: &str, done: u64, total: u64, elapsed: Duration) -> String {
    const WIDTH: u64 = 20;
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * WIDTH as f64).round() as u64;
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    let eta = if rate > 0.0 && total > done {
        clock(((total - done) as f64 / rate).round() as u64)
    } else if total <= done {
        "0:00".to_owned()
    } else {
        "--:--".to_owned()
    };
    format!(
        "{label:<11} [{bar}] {:>3}%  {}/{}  {} {unit}/s  ETA {eta}",
        (fraction * 100.0).floor() as u64,
        grouped(done),
        grouped(total),
        grouped(rate.round() as u64),
    )
}

fn clock(seconds: u64) -> String {
    if seconds >= 3600 {
        format!(
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    } else {
        format!("{}:{:02}", seconds / 60, seconds % 60)
    }
}

/// `1234567` → `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_share_rate_and_eta() {
        let line = render(
            "replaying",
            "events",
            41_000,
            100_000,
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "replaying   [########------------]  41%  41,000/100,000  20,500 events/s  ETA 0:03"
        );
    }

    #[test]
    fn an_empty_phase_is_complete() {
        let line = render("switching", "events", 0, 0, Duration::ZERO);
        assert!(line.contains("100%") && line.contains("ETA 0:00"), "{line}");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn long_waits_show_hours() {
        assert_eq!(clock(3725), "1:02:05");
        assert_eq!(clock(65), "1:05");
    }
}
