//! The selected job's worker output: the live tail, or where the person scrolled to.
//!
//! Shows the full log file's path first, then the kept lines (stderr marked `2│`, stdout
//! ` │`). Following is the default; scrolling up pauses it, `f` or the end resumes. Lines
//! are cut, not wrapped, so scrolling counts lines exactly. Reads the app only.

use crate::engine::event::Stream;
use crate::tui::app::{App, Pane};
use crate::tui::views::{fit, pane_block, title};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Draws the output pane.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let Some(record) = app.selected_job() else {
        let block = pane_block(app, Pane::Output, title(app, Pane::Output, vec![]));
        frame.render_widget(
            Paragraph::new(Line::styled("Select a job to see its output.", theme.dim()))
                .block(block),
            area,
        );
        return;
    };
    let ring = &record.output;
    let rows = usize::from(area.height.saturating_sub(3));
    let first = ring.evicted;
    let end = first + ring.len() as u64;
    let last_top = end.saturating_sub(rows as u64).max(first);
    let top = if app.follow {
        last_top
    } else {
        app.output_top.clamp(first, last_top)
    };
    let mode = if app.follow {
        Span::styled("following", theme.good())
    } else {
        Span::styled(
            format!("paused at {}/{} · f follows", top + 1, end),
            theme.warn(),
        )
    };
    let mut details = vec![
        Span::raw(format!("job {} {}", record.view.id, record.view.job_name)),
        mode,
    ];
    if ring.evicted > 0 {
        details.push(Span::styled(
            format!("{} older lines only in the log", ring.evicted),
            theme.dim(),
        ));
    }
    let block = pane_block(app, Pane::Output, title(app, Pane::Output, details));
    let width = usize::from(area.width.saturating_sub(4));
    let path = match &record.view.log_path {
        Some(p) => format!("log: {}", p.display()),
        None => "log: (no log file yet: the worker has not started)".into(),
    };
    let mut lines = vec![Line::styled(fit(&path, width + 2), theme.dim())];
    if ring.is_empty() {
        lines.push(Line::styled("(no output yet)", theme.dim()));
    }
    let skip = (top - first) as usize;
    lines.extend(ring.lines().iter().skip(skip).take(rows).map(|l| {
        let text = fit(&l.text, width);
        match l.stream {
            Stream::Stdout => Line::from(vec![Span::styled(" │", theme.dim()), Span::raw(text)]),
            Stream::Stderr => Line::from(vec![
                Span::styled("2│", theme.warn()),
                Span::styled(text, theme.warn()),
            ]),
        }
    }));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
