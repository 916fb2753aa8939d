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

/// Draws the tokens and budget pane.
pub fn render(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let theme = app.theme;
    let width = usize::from(area.width.saturating_sub(2));
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
    let remaining = match (b.remaining, b.limit) {
        (Some(r), Some(l)) => {
            let style = if l > 0 && r * 10 < l {
                theme.alert()
            } else {
                Style::new()
            };
            Span::styled(format!("{r} of {l}"), style)
        }
        (Some(r), None) => Span::raw(r.to_string()),
        _ => Span::styled("not reported yet", theme.dim()),
    };
    lines.push(row("remaining", remaining));
    let reset = match b.reset {
        Some(at) if at > now => Span::raw(format!("in {}", compact(seconds_between(now, at)))),
        Some(_) => Span::styled("passed", theme.dim()),
        None => Span::styled("unknown", theme.dim()),
    };
    lines.push(row("resets", reset));
    lines.push(row("calls made", Span::raw(b.calls.to_string())));
    lines.push(row(
        "saved by caches",
        Span::styled(b.saved.to_string(), theme.good()),
    ));
    let block = pane_block(app, Pane::Tokens, title(app, Pane::Tokens, vec![]));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
