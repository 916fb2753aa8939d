//! The bottom line: intake health, runners, workers against `max_parallel`, pause, dropped
//! output, the last fault, and the dashboard's own notices.
//!
//! Segments are laid out in priority order and the ones that do not fit are left off, so the
//! line works at 80 columns. Reads the app only.

use crate::tui::app::{App, Lifecycle};
use crate::tui::views::{ago, fit, seconds_between};
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Faults older than this leave the status bar (they stay in the log).
const FAULT_SHOWN_SECS: i64 = 60;
/// A fault's text is cut to this, so the rest of the bar still fits beside it.
const FAULT_CHARS: usize = 48;

/// The segments, most important first.
pub fn segments(app: &App, now: DateTime<Utc>) -> Vec<(String, Style)> {
    let theme = app.theme;
    let m = &app.model;
    let mut out = Vec::new();
    if app.lifecycle == Lifecycle::ShutdownRequested || m.shutting_down.is_some() {
        out.push(("SHUTTING DOWN".to_string(), theme.alert()));
    } else if m.intake.paused {
        out.push(("PAUSED (p resumes)".to_string(), theme.warn()));
    }
    if let Some(notice) = &app.notice {
        out.push((notice.clone(), theme.warn()));
    }
    if let Some(f) = m
        .faults
        .back()
        .filter(|f| seconds_between(f.at, now) < FAULT_SHOWN_SECS)
    {
        out.push((
            fit(
                &format!("fault {}: {}", f.component, f.message),
                FAULT_CHARS,
            ),
            theme.alert(),
        ));
    }
    let c = &m.capacity;
    let max = c.max_parallel.map_or("∞".to_string(), |n| n.to_string());
    out.push((format!("workers {}/{max}", c.workers_running), Style::new()));
    out.push((
        format!("runners {} idle {} busy", c.runners_idle, c.runners_busy),
        Style::new(),
    ));
    let i = &m.intake;
    let mut intake = match &i.webhook_address {
        Some(addr) => format!("webhook {addr} last {}", ago(i.last_delivery, now)),
        None => "no webhook".into(),
    };
    let poll_style = match (&i.poll_error, i.last_poll_ok) {
        (Some(err), _) => {
            intake.push_str(&format!(" · poll failing: {err}"));
            theme.alert()
        }
        (None, Some(at)) => {
            intake.push_str(&format!(" · poll ok {}", ago(Some(at), now)));
            Style::new()
        }
        (None, None) => Style::new(),
    };
    out.push((intake, poll_style));
    out.push((
        format!("output dropped {}", m.output_dropped),
        if m.output_dropped > 0 {
            theme.warn()
        } else {
            Style::new()
        },
    ));
    out.push(("? help".to_string(), theme.dim()));
    out
}

/// Draws the status bar: segments in order, wrapping to the next row, left off if no row
/// has room.
pub fn render(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let width = usize::from(area.width);
    let mut rows: Vec<(usize, Vec<Span>)> = vec![(0, Vec::new()); usize::from(area.height)];
    for (text, style) in segments(app, now) {
        let len = text.chars().count();
        let Some((used, spans)) = rows.iter_mut().find(|(used, spans)| {
            let sep = if spans.is_empty() { 1 } else { 3 };
            used + sep + len <= width
        }) else {
            continue;
        };
        let sep = if spans.is_empty() { " " } else { " │ " };
        *used += sep.chars().count() + len;
        spans.push(Span::raw(sep));
        spans.push(Span::styled(text, style));
    }
    let lines: Vec<Line> = rows
        .into_iter()
        .map(|(_, spans)| Line::from(spans))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
