//! The confirmation dialog, and the notice shown while the engine shuts down.
//!
//! A dialog says what will happen in full sentences and how to answer; the answer keys come
//! from the keymap. Reads the dialog and the app only.

use crate::tui::app::{App, Dialog};
use crate::tui::keymap::{Action, BINDINGS, Context};
use crate::tui::theme::Theme;
use crate::tui::views::centered;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

fn keys_for(action: Action) -> String {
    BINDINGS
        .iter()
        .filter(|b| b.context == Context::Dialog && b.action == action)
        .flat_map(|b| b.keys.iter().map(|k| k.label()))
        .collect::<Vec<_>>()
        .join("/")
}

fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, theme: Theme) {
    let width = area.width.saturating_sub(4).min(72);
    // Wrapped text needs roughly one row per `width` characters of each line.
    let inner_width = usize::from(width.saturating_sub(4)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_width).max(1))
        .sum();
    let rect = centered(area, width, rows as u16 + 4);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(theme.alert())
        .title(Line::styled(format!(" {title} "), theme.alert()));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block.padding(ratatui::widgets::Padding::new(1, 1, 1, 0))),
        rect,
    );
}

/// Draws a confirmation dialog.
pub fn render(frame: &mut Frame, area: Rect, dialog: &Dialog, theme: Theme) {
    let mut lines: Vec<Line<'static>> = dialog.lines.iter().map(|l| Line::raw(l.clone())).collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled(keys_for(Action::Confirm), theme.focused()),
        Span::raw(" yes   "),
        Span::styled(keys_for(Action::Dismiss), theme.focused()),
        Span::raw(" no"),
    ]));
    popup(frame, area, &dialog.title, lines, theme);
}

/// Draws what the engine said about its shutdown while the dashboard waits for it.
pub fn render_shutdown(frame: &mut Frame, area: Rect, app: &App) {
    let message = app
        .model
        .shutting_down
        .clone()
        .unwrap_or_else(|| "Asked the engine to shut down; waiting for it.".into());
    let lines = vec![
        Line::raw(message),
        Line::styled(
            format!(
                "{} worker(s) still running. The dashboard closes when the engine is done.",
                app.model.running_workers()
            ),
            app.theme.dim(),
        ),
    ];
    popup(frame, area, "Shutting down", lines, app.theme);
}
