//! Input progress: one indicatif bar counts the input bytes consumed, for the bar on stderr
//! and for the summary. Text inputs count through `ProgressBar::wrap_read`; Parquet inputs add
//! each batch's share of their file. A hidden bar still counts.

use std::io::Read;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressBarIter, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct ByteCounter(ProgressBar);

impl ByteCounter {
    /// A counter towards `total` bytes, drawn on stderr when `visible` (and stderr is a terminal).
    pub fn new(total: u64, visible: bool) -> Self {
        if !visible {
            return Self(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        // keeps the spinner and rate moving while the writer, not the reader, is busy
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(bar)
    }

    pub fn add(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn get(&self) -> u64 {
        self.0.position()
    }

    pub fn wrap<R: Read>(&self, inner: R) -> ProgressBarIter<R> {
        self.0.wrap_read(inner)
    }

    /// Removes the bar from the terminal; the count stays readable.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::ByteCounter;

    #[test]
    fn a_hidden_counter_counts_bytes_read_and_added() {
        let counter = ByteCounter::new(1_000, false);
        let mut text = String::new();
        counter.wrap(&b"hello, world"[..]).read_to_string(&mut text).unwrap();
        counter.clone().add(100);
        counter.finish();
        assert_eq!((text.as_str(), counter.get()), ("hello, world", 112));
    }
}
