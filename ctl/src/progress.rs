//! Progress bars on standard error (indicatif), with rate and ETA:
//!
//! `replaying   [########------------]  41%  41,000/100,000  12,345 events/s  ETA 0:04`
//!
//! Drawn at most ten times a second, and only when asked for (`--progress`, by default when
//! standard error is a terminal), so scripts get clean output. Asked for explicitly, the bar
//! is drawn to a pipe or a file too (indicatif on its own draws only to a terminal): a CI log
//! shows how far a rebuild got.

use std::{fmt, io::IsTerminal as _, sync::Mutex};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::cli::When;

/// Redraws per second at most.
const HZ: u8 = 10;

/// The bar of the phase in hand (replaying, settling...); hidden unless enabled.
pub struct Bar {
    enabled: bool,
    bar: ProgressBar,
}

impl Bar {
    pub fn new(when: When) -> Self {
        let enabled = match when {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stderr().is_terminal(),
        };
        Self {
            enabled,
            bar: ProgressBar::hidden(),
        }
    }

    /// Starts a new phase of `total` items, on a line of its own.
    pub fn start(&mut self, label: &str, unit: &'static str, total: u64) {
        self.bar = ProgressBar::with_draw_target(Some(total), self.target())
            .with_style(style(unit))
            .with_prefix(label.to_owned());
        self.bar.tick();
    }

    /// Grows the total (more arrived while catching up).
    pub fn extend_to(&mut self, total: u64) {
        if self.bar.length().is_none_or(|len| len < total) {
            self.bar.set_length(total);
        }
    }

    pub fn advance(&mut self, items: u64) {
        self.bar.inc(items);
    }

    /// Draws the final state, complete, and ends the line.
    pub fn finish(&mut self) {
        // Whatever was counted is the whole phase: the last line reads 100%.
        let len = self.bar.length().unwrap_or(0).max(self.bar.position());
        self.bar.set_length(len);
        self.bar.finish();
        if self.enabled {
            eprintln!();
        }
    }

    fn target(&self) -> ProgressDrawTarget {
        if !self.enabled {
            ProgressDrawTarget::hidden()
        } else if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(HZ)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(Lines::new(std::io::stderr())), HZ)
        }
    }
}

/// A rebuild draws its phases on the bar.
impl projector::rebuild::Progress for Bar {
    fn start(&mut self, phase: &str, unit: &'static str, total: u64) {
        Bar::start(self, phase, unit, total);
    }

    fn extend_to(&mut self, total: u64) {
        Bar::extend_to(self, total);
    }

    fn advance(&mut self, items: u64) {
        Bar::advance(self, items);
    }

    fn finish(&mut self) {
        Bar::finish(self);
    }
}

/// `label [bar] share done/total rate unit/s ETA m:ss`.
fn style(unit: &'static str) -> ProgressStyle {
    const TEMPLATE: &str =
        "{prefix:<11} [{bar:20}] {share:>3}%  {human_pos}/{human_len}  {rate}  ETA {clock}";
    let Ok(style) = ProgressStyle::with_template(TEMPLATE) else {
        // The template is a constant (a test parses it): this is not reached.
        return ProgressStyle::default_bar();
    };
    style
        .progress_chars("#-")
        .with_key("share", |state: &ProgressState, w: &mut dyn fmt::Write| {
            // Rounded down: 100% only when complete.
            let _ = write!(w, "{}", (state.fraction() * 100.0).floor() as u64);
        })
        .with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn fmt::Write| {
                let per_sec = state.per_sec();
                let per_sec = if per_sec.is_finite() { per_sec } else { 0.0 };
                let _ = write!(w, "{} {unit}/s", HumanCount(per_sec.round() as u64));
            },
        )
        .with_key("clock", |state: &ProgressState, w: &mut dyn fmt::Write| {
            let left = state.len().unwrap_or(0).saturating_sub(state.pos());
            let _ = if left == 0 || state.is_finished() {
                w.write_str("0:00")
            } else if state.pos() == 0 {
                w.write_str("--:--")
            } else {
                w.write_str(&clock(state.eta().as_secs()))
            };
        })
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

/// `1234567` → `1,234,567` (a `String`, so it pads in a table column).
pub fn grouped(n: u64) -> String {
    HumanCount(n).to_string()
}

/// A terminal as indicatif sees it, over any writer: each redraw returns to the start of the
/// line and clears it. Lines are never wrapped (a pipe has no width).
struct Lines<W> {
    out: Mutex<W>,
}

impl<W: std::io::Write + Send> Lines<W> {
    fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        match self.out.lock() {
            Ok(mut out) => out.write_all(text.as_bytes()),
            // A panic while drawing: the bar is not worth a second one.
            Err(_) => Ok(()),
        }
    }

    fn move_cursor(&self, n: usize, direction: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}{direction}"))
    }
}

impl<W> fmt::Debug for Lines<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lines")
    }
}

impl<W: std::io::Write + Send> indicatif::TermLike for Lines<W> {
    fn width(&self) -> u16 {
        u16::MAX
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.move_cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.move_cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.move_cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.move_cursor(n, 'D')
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write(&format!("{line}\n"))
    }

    fn write_str(&self, text: &str) -> std::io::Result<()> {
        self.write(text)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        match self.out.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn bar_into(out: &Captured, total: u64) -> ProgressBar {
        ProgressBar::with_draw_target(
            Some(total),
            ProgressDrawTarget::term_like_with_hz(Box::new(Lines::new(out.clone())), HZ),
        )
        .with_style(style("events"))
        .with_prefix("replaying")
    }

    #[test]
    fn the_bar_shows_share_counts_rate_and_eta() {
        let out = Captured::default();
        let bar = bar_into(&out, 100_000);
        bar.inc(41_000);
        bar.tick();
        let text = out.text();
        assert!(
            text.contains("replaying   [########------------]  41%  41,000/100,000  "),
            "{text:?}"
        );
        assert!(
            text.contains(" events/s  ETA ") && !text.contains('\n'),
            "{text:?}"
        );
    }

    #[test]
    fn the_last_line_reads_100_percent_and_eta_0() {
        let out = Captured::default();
        let bar = bar_into(&out, 2);
        bar.inc(2);
        bar.finish();
        let text = out.text();
        let last = text.rsplit('\r').next().unwrap_or_default();
        assert!(
            last.contains("100%  2/2") && last.contains("events/s  ETA 0:00"),
            "{text:?}"
        );
    }

    #[test]
    fn an_empty_phase_is_complete() {
        let out = Captured::default();
        bar_into(&out, 0).finish();
        assert!(out.text().contains("100%  0/0"), "{:?}", out.text());
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
