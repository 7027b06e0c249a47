//! The standalone `pycov` binary: reports and merges without Python; `run`
//! is handed to `python -m pycov` in the chosen interpreter.

use std::process::ExitCode;

use pycov_cli::Outcome;

fn main() -> ExitCode {
    match pycov_cli::main(std::env::args_os().collect(), None) {
        Outcome::Exit(code) => ExitCode::from((code & 0xff) as u8),
        // The program was interrupted; 128 + SIGINT, as shells report it.
        Outcome::Interrupted => ExitCode::from(130),
    }
}
