//! The local terminal of `flotilla exec -it`: raw mode while the remote command has the
//! terminal (restored when the guard drops, also on an error or a panic), and its size.
//!
//! What this is not: a terminal emulator. Bytes pass through unchanged both ways; the remote
//! pseudo-terminal does the line discipline.

use flotilla_protocol::exec::TermSize;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

/// Raw mode on stdin's terminal until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode (no echo, no line editing, no signals from keys: the
    /// remote terminal does all that).
    pub fn enable() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// The size of the terminal on stdin, else on stdout; `None` without one.
pub fn size() -> Option<TermSize> {
    let from = |w: rustix::termios::Winsize| {
        (w.ws_col > 0 && w.ws_row > 0).then_some(TermSize {
            cols: w.ws_col,
            rows: w.ws_row,
        })
    };
    tcgetwinsize(std::io::stdin())
        .ok()
        .and_then(from)
        .or_else(|| tcgetwinsize(std::io::stdout()).ok().and_then(from))
}
