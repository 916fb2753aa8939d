//! Why things happened: the selected job's matching, runner and history, then the feed of
//! recent decisions about all jobs.
//!
//! For the selected job: each worker entry's fit (labels missing or extra), the runner that
//! took it and whether it was the one registered for it, every state it went through, the
//! reason it is in its state, and the engine's decisions about it. Reads the app only.

use crate::engine::event::{Decision, DecisionKind, JobState};
use crate::tui::app::{App, Pane};
use crate::tui::explain::{describe, explain};
use crate::tui::model::JobRecord;
use crate::tui::theme::Theme;
use crate::tui::views::{fit, label_list, pane_block, title};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

fn kind(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Match => "match",
        DecisionKind::Reconcile => "reconcile",
        DecisionKind::Bind => "bind",
        DecisionKind::Transition => "state",
        DecisionKind::Command => "command",
        DecisionKind::Intake => "intake",
    }
}

fn decision_line(d: &Decision, with_job: bool, width: usize, theme: Theme) -> Line<'static> {
    let job = match (with_job, d.job) {
        (true, Some(id)) => format!("#{id} "),
        _ => String::new(),
    };
    let head = format!("{} {:<9} {job}", d.at.format("%H:%M:%S"), kind(d.kind));
    // The engine often starts with "job N: "; the id is already on the line or implied.
    let message = d
        .job
        .and_then(|id| d.message.strip_prefix(&format!("job {id}: ")))
        .unwrap_or(&d.message);
    let rest = fit(message, width.saturating_sub(head.chars().count()));
    Line::from(vec![Span::styled(head, theme.dim()), Span::raw(rest)])
}

/// `states: queued → waiting → running`; when too long, the oldest give way to `…`.
fn states_line(record: &JobRecord, width: usize) -> String {
    let names: Vec<&str> = record.states.iter().map(|s| s.as_str()).collect();
    let full = format!("states: {}", names.join(" → "));
    if full.chars().count() <= width {
        return full;
    }
    for skip in 1..names.len() {
        let text = format!("states: … → {}", names[skip..].join(" → "));
        if text.chars().count() <= width {
            return text;
        }
    }
    fit(&full, width)
}

/// What the dashboard can say about one job, line by line.
pub fn job_lines(app: &App, record: &JobRecord, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let v = &record.view;
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("job {} ", v.id), theme.header()),
        Span::raw(fit(
            &format!(
                "{} {} / {} {}",
                v.repository,
                v.workflow_name,
                v.job_name,
                label_list(&v.labels)
            ),
            width.saturating_sub(10),
        )),
    ])];
    for f in explain(&v.labels, &app.workers) {
        let style = if f.serves { theme.good() } else { theme.dim() };
        let chosen = if v.worker_entry == Some(f.index) {
            " ← chosen"
        } else {
            ""
        };
        lines.push(Line::styled(
            fit(&format!("  {}{chosen}", describe(&f)), width),
            style,
        ));
    }
    if app.workers.is_empty() {
        lines.push(Line::styled("  (no worker entries known)", theme.dim()));
    }
    let registered = app.model.runner_registered_for(v.id);
    match &v.runner_name {
        None => {
            lines.push(Line::raw("runner: none yet"));
            if let Some(r) = registered {
                lines.push(Line::raw(fit(
                    &format!("  {} is registered for it", r.name),
                    width,
                )));
            }
        }
        Some(name) => {
            lines.push(Line::raw(fit(&format!("runner: {name}"), width)));
            if v.runner_was_other_jobs {
                let intended = record
                    .took_runner_of
                    .map_or("another job".into(), |j| format!("job {j}"));
                lines.push(Line::styled(
                    fit(
                        &format!("  registered for {intended}: it took another job's runner"),
                        width,
                    ),
                    theme.warn(),
                ));
            } else {
                lines.push(Line::raw("  the runner registered for it"));
            }
        }
    }
    lines.push(Line::raw(states_line(record, width)));
    if let Some(reason) = &v.reason {
        lines.push(Line::styled(
            fit(&format!("reason: {reason}"), width),
            if matches!(v.state, JobState::Failed | JobState::Unmatched) {
                theme.alert()
            } else {
                Default::default()
            },
        ));
    }
    lines
}

/// The job's own decisions, oldest first: its timeline.
pub fn timeline_lines(app: &App, record: &JobRecord, width: usize) -> Vec<Line<'static>> {
    record
        .decisions
        .iter()
        .map(|d| decision_line(d, false, width, app.theme))
        .collect()
}

/// Draws the decisions pane.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let block = pane_block(app, Pane::Decisions, title(app, Pane::Decisions, vec![]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let (mut job, timeline) = match app.selected_job() {
        Some(r) => (job_lines(app, r, width), timeline_lines(app, r, width)),
        None => (vec![Line::styled("No job selected.", theme.dim())], vec![]),
    };
    // The feed keeps a third of the rows (at least a heading and three decisions); the job's
    // part gets what it needs of the rest. When the timeline does not fit, its latest
    // entries are the ones shown.
    let feed_rows = (inner.height / 3).max(4);
    let budget = usize::from(inner.height.saturating_sub(feed_rows));
    let room = budget.saturating_sub(job.len());
    job.extend(
        timeline
            .iter()
            .skip(timeline.len().saturating_sub(room))
            .cloned(),
    );
    let job_rows = (job.len() as u16).min(budget as u16);
    let [job_area, feed_area] =
        Layout::vertical([Constraint::Length(job_rows), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(Paragraph::new(job), job_area);

    let rows = usize::from(feed_area.height.saturating_sub(1));
    let feed = &app.model.feed;
    let end = feed.len().saturating_sub(app.feed_scroll);
    let start = end.saturating_sub(rows);
    let heading = if app.feed_scroll > 0 {
        format!("── recent decisions, {} back ", app.feed_scroll)
    } else {
        "── recent decisions (all jobs) ".into()
    };
    let mut lines = vec![Line::styled(format!("{heading:─<width$}"), theme.header())];
    lines.extend(
        feed.range(start..end)
            .map(|d| decision_line(d, true, width, theme)),
    );
    frame.render_widget(Paragraph::new(lines), feed_area);
}
