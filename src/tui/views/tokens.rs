//! Credentials and the REST budget: live countdowns per registration scope, then the PAT's
//! remaining calls, their reset, and what the caches saved.
//!
//! Shows times only, never a credential (the events carry none). A countdown under five
//! minutes is drawn as a warning, a past expiry as a problem. Reads the app only.

use crate::tui::app::{App, Pane};
use crate::tui::theme::Theme;
use crate::tui::views::{compact, fit, pane_block, seconds_between, title};
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// `in 4m05s` / `expired 12s ago` / `not cached`, and how to draw it.
pub fn countdown(at: Option<DateTime<Utc>>, now: DateTime<Utc>, theme: Theme) -> Span<'static> {
    match at {
        None => Span::styled("not cached", theme.dim()),
        Some(at) => {
            let left = seconds_between(now, at);
            if left <= 0 {
                Span::styled(format!("expired {} ago", compact(-left)), theme.alert())
            } else {
                let style = if left < 300 {
                    theme.warn()
                } else {
                    Style::new()
                };
                Span::styled(format!("in {}", compact(left)), style)
            }
        }
    }
}

fn row(label: &str, value: Span<'static>) -> Line<'static> {
    Line::from(vec![Span::raw(format!("  {label:<20}")), value])
}

fn remaining(app: &App) -> Span<'static> {
    let b = &app.model.budget;
    match (b.remaining, b.limit) {
        (Some(r), Some(l)) => {
            let style = if l > 0 && r * 10 < l {
                app.theme.alert()
            } else {
                Style::new()
            };
            Span::styled(format!("{r} of {l}"), style)
        }
        (Some(r), None) => Span::raw(r.to_string()),
        _ => Span::styled("not reported yet", app.theme.dim()),
    }
}

fn reset(app: &App, now: DateTime<Utc>) -> Span<'static> {
    match app.model.budget.reset {
        Some(at) if at > now => Span::raw(format!("in {}", compact(seconds_between(now, at)))),
        Some(_) => Span::styled("passed", app.theme.dim()),
        None => Span::styled("unknown", app.theme.dim()),
    }
}

/// One row per fact: for tall panes.
fn tall_lines(app: &App, now: DateTime<Utc>, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let m = &app.model;
    let mut lines = Vec::new();
    if m.tokens.is_empty() {
        lines.push(Line::styled("No registration scope used yet.", theme.dim()));
    }
    for scope in &m.tokens {
        lines.push(Line::styled(fit(&scope.scope, width), theme.header()));
        lines.push(row(
            "registration token",
            countdown(scope.registration_token_expires, now, theme),
        ));
        lines.push(row(
            "registration JWT",
            countdown(scope.jwt_expires, now, theme),
        ));
        lines.push(row(
            "runner OAuth tokens",
            Span::raw(scope.oauth_tokens.to_string()),
        ));
        lines.push(row(
            "served from cache",
            Span::raw(format!("{} registrations", scope.cache_hits)),
        ));
    }
    let b = &m.budget;
    lines.push(Line::styled("REST budget (PAT)", theme.header()));
    lines.push(row("remaining", remaining(app)));
    lines.push(row("resets", reset(app, now)));
    lines.push(row("calls made", Span::raw(b.calls.to_string())));
    lines.push(row(
        "saved by caches",
        Span::styled(b.saved.to_string(), theme.good()),
    ));
    lines
}

/// Three rows per scope and two for the budget: for the wide layout's short pane.
fn short_lines(app: &App, now: DateTime<Utc>, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let m = &app.model;
    let mut lines = Vec::new();
    if m.tokens.is_empty() {
        lines.push(Line::styled("No registration scope used yet.", theme.dim()));
    }
    for scope in &m.tokens {
        lines.push(Line::styled(fit(&scope.scope, width), theme.header()));
        lines.push(Line::from(vec![
            Span::raw("  registration token "),
            countdown(scope.registration_token_expires, now, theme),
            Span::raw(" · JWT "),
            countdown(scope.jwt_expires, now, theme),
        ]));
        lines.push(Line::raw(format!(
            "  runner OAuth tokens {} · registrations from cache {}",
            scope.oauth_tokens, scope.cache_hits
        )));
    }
    let b = &m.budget;
    lines.push(Line::from(vec![
        Span::styled("REST budget ", theme.header()),
        remaining(app),
        Span::raw(" · resets "),
        reset(app, now),
    ]));
    lines.push(Line::from(vec![
        Span::raw(format!("  calls made {} · saved by caches ", b.calls)),
        Span::styled(b.saved.to_string(), theme.good()),
    ]));
    lines
}

/// Rows the short form needs, borders included (for the wide layout).
pub fn short_rows(app: &App) -> u16 {
    let scopes = app.model.tokens.len().max(1) as u16;
    let scope_rows = if app.model.tokens.is_empty() {
        1
    } else {
        3 * scopes
    };
    scope_rows + 2 + 2
}

/// Draws the tokens and budget pane, one fact per row when it fits.
pub fn render(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let width = usize::from(area.width.saturating_sub(2));
    let tall = tall_lines(app, now, width);
    let lines = if tall.len() + 2 <= usize::from(area.height) {
        tall
    } else {
        short_lines(app, now, width)
    };
    let block = pane_block(app, Pane::Tokens, title(app, Pane::Tokens, vec![]));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
