//! The terminal's lifecycle: raw mode and the alternate screen on the way in, the previous
//! state on the way out, whatever the way out is.
//!
//! Owns [`TerminalGuard`] (restores on drop, so on `?` and on normal return) and the panic
//! policy: a panic anywhere logs through `tracing`, restores the terminal, prints the usual
//! report on the restored screen, and exits the process non-zero, because the engine runs on
//! other threads and must not keep going behind a dead dashboard. Nothing else here.

use anyhow::Context as _;
use ratatui::DefaultTerminal;
use std::sync::Once;

/// Exit code after a panic.
pub const PANIC_EXIT_CODE: i32 = 101;

static PANIC_HOOK: Once = Once::new();

/// A terminal in raw mode on the alternate screen; dropping it restores the terminal.
pub struct TerminalGuard {
    /// `None` once abandoned.
    terminal: Option<DefaultTerminal>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, with the panic hook installed first.
    pub fn enter() -> anyhow::Result<Self> {
        let terminal = ratatui::try_init().context("cannot set up the terminal")?;
        install_panic_hook();
        Ok(TerminalGuard {
            terminal: Some(terminal),
        })
    }

    /// The terminal to draw on; `None` once abandoned.
    pub fn terminal(&mut self) -> Option<&mut DefaultTerminal> {
        self.terminal.as_mut()
    }

    /// Gives up on a terminal that went away (closed pane, dropped ssh session): nothing is
    /// restored, because nothing is there. ratatui's `Terminal` would print to the dead stderr
    /// when dropped, and printing to a dead stderr panics, so it is forgotten instead.
    pub fn abandon(mut self) {
        if let Some(terminal) = self.terminal.take() {
            std::mem::forget(terminal);
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.terminal.is_none() {
            return;
        }
        // Errors cannot be reported anywhere useful here; the log has the rest.
        if let Err(e) = ratatui::try_restore() {
            tracing::warn!(error = %e, "cannot restore the terminal; it is gone");
            // As in `abandon`: dropping ratatui's `Terminal` would print to a dead stderr.
            if let Some(terminal) = self.terminal.take() {
                std::mem::forget(terminal);
            }
        }
    }
}

/// Chains a hook in front of the current one (which `ratatui::try_init` made restore the
/// terminal): log, restore, report, exit non-zero. Installed once per process.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!(panic = %info, "panic; restoring the terminal and exiting");
            let _ = ratatui::try_restore();
            // The log file is written by a background thread whose flush-on-drop
            // `process::exit` skips; give it a moment to write the line above.
            std::thread::sleep(std::time::Duration::from_millis(200));
            previous(info);
            std::process::exit(PANIC_EXIT_CODE);
        }));
    });
}
