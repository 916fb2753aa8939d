//! Styles of the dashboard, with and without colour.
//!
//! Owns every colour choice, so `NO_COLOR` (<https://no-color.org>) is honoured in one place:
//! when it is set to anything non-empty, no foreground or background colour is used and
//! emphasis falls back to bold and reverse video, which every terminal has. Nothing on screen
//! may depend on colour alone; the views also mark problems with text (`!`).

use crate::engine::event::JobState;
use ratatui::style::{Color, Modifier, Style};

/// The dashboard's palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// False under `NO_COLOR`.
    pub color: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Theme { color: true }
    }
}

impl Theme {
    /// Reads `NO_COLOR` from the environment.
    pub fn from_env() -> Self {
        Self::from_no_color(std::env::var_os("NO_COLOR").as_deref())
    }

    /// The theme for a given value of `NO_COLOR`: set and non-empty disables colour.
    pub fn from_no_color(value: Option<&std::ffi::OsStr>) -> Self {
        Theme {
            color: value.is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Problems: unmatched and failed jobs, expired tokens, faults.
    pub fn alert(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Things about to go wrong: tokens close to expiry, paused intake, dropped output.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Good news: a successful job, a serving worker entry.
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }

    /// Secondary text: headers, paths, timestamps.
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// Column headers and section titles.
    pub fn header(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// The border of the pane that has the focus.
    pub fn focused(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// A job's state.
    pub fn state(self, state: JobState) -> Style {
        match state {
            JobState::Unmatched | JobState::Failed => self.alert(),
            JobState::WorkerRunning => self.fg(Color::Green),
            JobState::Assigned | JobState::RunnerRegistered => self.fg(Color::Cyan),
            JobState::Queued | JobState::WaitingForRunner => self.fg(Color::Yellow),
            JobState::Cancelled | JobState::Completed => self.dim(),
        }
    }

    /// A GitHub conclusion.
    pub fn conclusion(self, conclusion: &str) -> Style {
        match conclusion {
            "success" => self.good(),
            "failure" | "timed_out" | "startup_failure" => self.alert(),
            _ => self.warn(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_set_and_non_empty_removes_every_colour() {
        let plain = Theme::from_no_color(Some(OsStr::new("1")));
        assert!(!plain.color);
        for style in [plain.alert(), plain.warn(), plain.good(), plain.dim()] {
            assert_eq!(style.fg, None);
            assert_eq!(style.bg, None);
        }
        assert!(plain.alert().add_modifier.contains(Modifier::BOLD));
        assert_eq!(plain.state(JobState::Failed).fg, None);
    }

    #[test]
    fn empty_or_absent_no_color_keeps_colour() {
        assert!(Theme::from_no_color(Some(OsStr::new(""))).color);
        assert!(Theme::from_no_color(None).color);
        assert_eq!(Theme::default().alert().fg, Some(Color::Red));
    }
}
