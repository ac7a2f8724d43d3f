//! Progress on stderr for the long-running commands (export, replay, seed, benchmarks).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};
use plinth_projections::read::RebuildProgress;

/// A bar drawn with `template` on stderr when it is a terminal; hidden otherwise, so that a
/// redirected stderr (a log file, CI) gets no control characters. `len: None` is a counter
/// for a total not known in advance.
pub(crate) fn on_terminal(len: Option<u64>, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// The bar of a read-model rebuild; feed it with [`on_rebuild`].
pub(crate) fn rebuild_bar() -> ProgressBar {
    on_terminal(
        Some(0),
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
    )
}

/// Moves `bar` with a rebuild's progress.
pub(crate) fn on_rebuild(bar: &ProgressBar) -> impl FnMut(RebuildProgress) + Send + '_ {
    move |p: RebuildProgress| {
        bar.set_length(p.total);
        bar.set_position(p.events);
    }
}
