//! The help overlay, generated from the keymap so it always tells the truth.
//!
//! The panes' keys fill the left column and the other contexts the right one; keys that act
//! on the engine are marked `*` (they ask for confirmation first). Reads the keymap and the
//! theme only.

use crate::tui::app::App;
use crate::tui::keymap::{Context, help_rows};
use crate::tui::views::{centered, fit};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

const KEY_WIDTH: usize = 10;

fn section(app: &App, context: Context, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(context.title(), app.theme.header())];
    for (ctx, keys, description) in help_rows() {
        if ctx == context {
            lines.push(Line::from(vec![
                Span::styled(format!("{keys:>KEY_WIDTH$} "), app.theme.focused()),
                Span::raw(fit(description, width.saturating_sub(KEY_WIDTH + 1))),
            ]));
        }
    }
    lines
}

/// Draws the help over whatever is on screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let left = section(app, Context::Normal, 38);
    let mut right = vec![
        Line::styled("* asks for confirmation first", app.theme.dim()),
        Line::raw(""),
    ];
    for context in [Context::Filter, Context::Dialog, Context::Help] {
        right.extend(section(app, context, 38));
        right.push(Line::raw(""));
    }
    right.push(Line::styled("Logs go to state_dir/logs,", app.theme.dim()));
    right.push(Line::styled("never to this screen.", app.theme.dim()));
    let height = left.len().max(right.len()) as u16 + 2;
    let popup = centered(area, 80, height);
    let block = Block::bordered()
        .title(Line::styled(" Keys ", app.theme.header()))
        .title_bottom(Line::styled(" Esc, ? or q closes ", app.theme.dim()));
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(Paragraph::new(left), l);
    frame.render_widget(Paragraph::new(right), r);
}
