//! `PYCOV_DEBUG=timing`: how long each phase of a run took, on stderr.

use std::sync::Mutex;
use std::time::Instant;

struct Phases {
    current: Option<(&'static str, Instant)>,
    done: Vec<(&'static str, f64)>,
}

static PHASES: Mutex<Phases> = Mutex::new(Phases {
    current: None,
    done: Vec::new(),
});

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
    eprintln!("pycov: timing: {} ({files} files)", summary.join(", "));
}
