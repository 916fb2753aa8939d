//! Drawing the dashboard from an [`App`] and a clock.
//!
//! Owns the layout and the small formatting helpers the panes share. Views only read the app
//! and take `now` as a parameter (countdowns and ages), so a frame is a pure function of its
//! inputs and snapshots are stable. They must not change state or talk to the engine.
//!
//! Wide layout (at least 120 columns and 32 rows):
//!
//! ```text
//! ┌ Jobs ───────────────────────────────────────────────────────────────────────┐
//! │ STATE  ID  REPOSITORY  WORKFLOW / JOB  LABELS  RUNNER  W  TIME  RESULT      │ 40%
//! └─────────────────────────────────────────────────────────────────────────────┘
//! ┌ Output ─ job 101 ───────────────────┐┌ Decisions ────────────────────────────┐
//! │ log: /state/jobs/101.log            ││ the selected job: matching per worker, │
//! │ live stdout/stderr tail             ││ runner, states, its decisions          │
//! │                                     ││ ── recent decisions (all jobs) ──      │
//! │                                     │└────────────────────────────────────────┘
//! │                                     │┌ Tokens & budget ──────────────────────┐
//! │                                     ││ countdowns per scope, REST budget      │ as needed
//! └─────────────────────────────────────┘└────────────────────────────────────────┘
//!  status bar: intake · runners · workers · dropped · notices · ? help
//! ```
//!
//! Narrow layout (80x24 and up): the jobs on top and one lower pane (Output, Decisions or
//! Tokens, chosen with `Tab`) below, then a two-row status bar. Overlays (help, confirmation,
//! shutting down) are drawn last, centred.

use crate::tui::app::{App, Lifecycle, Pane};
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

pub mod confirm;
pub mod decisions;
pub mod help;
pub mod jobs;
pub mod output;
pub mod status_bar;
pub mod tokens;

/// Where each pane goes on a screen of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub jobs: Rect,
    pub output: Option<Rect>,
    pub decisions: Option<Rect>,
    pub tokens: Option<Rect>,
    pub status: Rect,
}

/// True when every pane fits at once.
pub fn is_wide(area: Rect) -> bool {
    area.width >= 120 && area.height >= 32
}

/// Splits the screen; in the narrow layout only `lower` of the three lower panes is placed.
/// `tokens_rows` is the height the tokens pane needs in the wide layout.
pub fn layout(area: Rect, lower: Pane, tokens_rows: u16) -> Areas {
    let wide = is_wide(area);
    let status_rows = if wide { 1 } else { 2 };
    let [main, status] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(status_rows)]).areas(area);
    if wide {
        let [jobs, bottom] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Fill(1)]).areas(main);
        let [output, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(bottom);
        let [decisions, tokens] =
            Layout::vertical([Constraint::Min(8), Constraint::Length(tokens_rows)]).areas(right);
        Areas {
            jobs,
            output: Some(output),
            decisions: Some(decisions),
            tokens: Some(tokens),
            status,
        }
    } else {
        let [jobs, rest] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Fill(1)]).areas(main);
        Areas {
            jobs,
            output: (lower == Pane::Output).then_some(rest),
            decisions: (lower == Pane::Decisions).then_some(rest),
            tokens: (lower == Pane::Tokens).then_some(rest),
            status,
        }
    }
}

/// Rows of output the output pane shows on a screen of this size (for paging and scrolling).
pub fn output_rows(area: Rect) -> u16 {
    let rect = layout(area, Pane::Output, 0).output.unwrap_or_default();
    // Borders and the log-path line.
    rect.height.saturating_sub(3)
}

/// Draws the whole dashboard.
pub fn render(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    let area = frame.area();
    let areas = layout(area, app.lower, tokens::short_rows(app));
    jobs::render(frame, areas.jobs, app, now);
    if let Some(rect) = areas.output {
        output::render(frame, rect, app);
    }
    if let Some(rect) = areas.decisions {
        decisions::render(frame, rect, app);
    }
    if let Some(rect) = areas.tokens {
        tokens::render(frame, rect, app, now);
    }
    status_bar::render(frame, areas.status, app, now);
    if app.show_help {
        help::render(frame, area, app);
    }
    if let Some(dialog) = &app.dialog {
        confirm::render(frame, area, dialog, app.theme);
    } else if app.lifecycle == Lifecycle::ShutdownRequested {
        confirm::render_shutdown(frame, area, app);
    }
}

/// A pane's frame: the focused one is drawn thick and bright. In the narrow layout the lower
/// pane's title lists its siblings so `Tab` is discoverable.
pub fn pane_block<'a>(app: &App, pane: Pane, title: Line<'a>) -> Block<'a> {
    let focused = app.focus == pane;
    let style = if focused {
        app.theme.focused()
    } else {
        Style::new()
    };
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(style)
        .title(title)
}

/// A title: the pane's name, then details.
pub fn title<'a>(app: &App, pane: Pane, details: Vec<Span<'a>>) -> Line<'a> {
    let mut spans = vec![Span::styled(
        format!(" {} ", pane.title()),
        app.theme.header(),
    )];
    for d in details {
        spans.push(Span::raw("─ "));
        spans.push(d);
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

/// A duration in the shortest readable form: `45s`, `3m07s`, `2h05m`, `3d04h`.
pub fn compact(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// Seconds from `from` to `to` (negative if `to` is earlier).
pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds()
}

/// `12s ago`, or `never`.
pub fn ago(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        Some(at) => format!("{} ago", compact(seconds_between(at, now))),
        None => "never".into(),
    }
}

/// `owner/repo` labels as `[a, b]`.
pub fn label_list(labels: &[String]) -> String {
    format!("[{}]", labels.join(", "))
}

/// A rectangle of at most `width` x `height`, centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_durations() {
        assert_eq!(compact(-3), "0s");
        assert_eq!(compact(45), "45s");
        assert_eq!(compact(187), "3m07s");
        assert_eq!(compact(7_500), "2h05m");
        assert_eq!(compact(277_200), "3d05h");
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn narrow_screens_show_one_lower_pane_and_wide_ones_all() {
        let narrow = layout(Rect::new(0, 0, 80, 24), Pane::Decisions, 7);
        assert!(narrow.output.is_none() && narrow.tokens.is_none());
        assert!(narrow.decisions.is_some());
        let wide = layout(Rect::new(0, 0, 120, 40), Pane::Decisions, 7);
        assert!(wide.output.is_some() && wide.tokens.is_some() && wide.decisions.is_some());
        assert_eq!(wide.status.y, 39);
        assert_eq!(narrow.status.height, 2);
    }
}
