//! `PYCOV_DEBUG=timing`: how long each phase of a run took, on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Phases {
    current: Option<(&'static str, Instant)>,
    done: Vec<(&'static str, f64)>,
}

static PHASES: Mutex<Phases> = Mutex::new(Phases {
    current: None,
    done: Vec::new(),
});

/// Tidying passes (see `tidy`) and the time they held the GIL, in ns.
static TIDY_PASSES: AtomicU64 = AtomicU64::new(0);
static TIDY_NANOS: AtomicU64 = AtomicU64::new(0);

/// Counts one tidying pass that held the GIL for `took`.
pub(crate) fn tidy_pass(took: Duration) {
    TIDY_PASSES.fetch_add(1, Ordering::Relaxed);
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    TIDY_NANOS.fetch_add(nanos, Ordering::Relaxed);
}

fn enabled() -> bool {
    crate::util::debugging("timing")
}

/// Ends the current phase and starts `name`.
pub(crate) fn start(name: &'static str) {
    if !enabled() {
        return;
    }
    let mut phases = crate::util::lock(&PHASES);
    let now = Instant::now();
    if let Some((previous, since)) = phases.current.replace((name, now)) {
        phases
            .done
            .push((previous, (now - since).as_secs_f64() * 1000.0));
    }
}

/// Ends the current phase and prints all of them.
pub(crate) fn report(files: usize) {
    if !enabled() {
        return;
    }
    start("");
    let mut phases = crate::util::lock(&PHASES);
    let summary: Vec<String> = phases
        .done
        .drain(..)
        .map(|(name, ms)| format!("{name} {ms:.1} ms"))
        .collect();
    phases.current = None;
    let passes = TIDY_PASSES.load(Ordering::Relaxed);
    let tidy_ms = TIDY_NANOS.load(Ordering::Relaxed) as f64 / 1e6;
    eprintln!(
        "pycov: timing: {} ({files} files; {passes} tidying passes, {tidy_ms:.1} ms)",
        summary.join(", ")
    );
}
