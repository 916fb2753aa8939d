//! The jobs table: one row per job, sorted and filtered, problems marked with `!`.
//!
//! Shows state, id, repository, workflow and job name, labels, runner, worker entry, queued age
//! or run time, and conclusion. On narrow screens the runner, id and worker columns give way
//! (the Decisions pane shows them for the selected job). Reads the app only.

use crate::engine::event::JobState;
use crate::tui::app::{App, Pane};
use crate::tui::model::JobRecord;
use crate::tui::views::{compact, pane_block, seconds_between, title};
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

/// True for jobs a person should look at: unmatched, failed, or concluded in failure.
pub fn needs_attention(record: &JobRecord) -> bool {
    matches!(record.view.state, JobState::Unmatched | JobState::Failed)
        || matches!(
            record.view.conclusion.as_deref(),
            Some("failure" | "timed_out" | "startup_failure")
        )
}

/// Time in the job's current phase: queued age, run time, or how long it ran.
pub fn job_time(record: &JobRecord, now: DateTime<Utc>) -> String {
    let v = &record.view;
    // An unmatched job is final for megascaler but still queued on GitHub: show its wait.
    if v.state == JobState::Unmatched {
        return compact(seconds_between(v.queued_at, now));
    }
    let secs = match (v.started_at, v.finished_at) {
        (Some(start), Some(end)) => seconds_between(start, end),
        (Some(start), None) => seconds_between(start, now),
        (None, Some(end)) => seconds_between(v.queued_at, end),
        (None, None) => seconds_between(v.queued_at, now),
    };
    compact(secs)
}

/// Draws the jobs table.
pub fn render(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let theme = app.theme;
    let jobs = app.visible_jobs();
    let mut details = vec![Span::raw(format!(
        "{}/{}",
        jobs.len(),
        app.model.jobs.len()
    ))];
    details.push(Span::raw(format!("sort: {}", app.sort.name())));
    if app.editing_filter || !app.filter.is_empty() {
        let cursor = if app.editing_filter { "▏" } else { "" };
        details.push(Span::styled(
            format!("filter: {}{cursor}", app.filter),
            theme.warn(),
        ));
    }
    let block = pane_block(app, Pane::Jobs, title(app, Pane::Jobs, details));
    if jobs.is_empty() {
        let text = if app.model.jobs.is_empty() {
            "No jobs yet. They appear when GitHub queues a job for a watched repository."
        } else {
            "No job matches the filter (Esc in the filter clears it)."
        };
        frame.render_widget(
            Paragraph::new(Line::styled(text, theme.dim())).block(block),
            area,
        );
        return;
    }
    let wide = area.width >= 110;
    let mut header = vec!["STATE"];
    if wide {
        header.push("ID");
    }
    header.extend(["REPOSITORY", "WORKFLOW/JOB", "LABELS"]);
    if wide {
        header.extend(["RUNNER", "W"]);
    }
    header.extend(["TIME", "RESULT"]);
    let rows = jobs.iter().map(|r| {
        let v = &r.view;
        let attention = needs_attention(r);
        let state = format!("{}{}", if attention { "! " } else { "" }, v.state.as_str());
        let mut cells = vec![Cell::from(Span::styled(state, theme.state(v.state)))];
        if wide {
            cells.push(Cell::from(v.id.to_string()));
        }
        cells.extend([
            Cell::from(v.repository.clone()),
            Cell::from(format!("{} / {}", v.workflow_name, v.job_name)),
            Cell::from(v.labels.join(",")),
        ]);
        if wide {
            let runner = match (&v.runner_name, v.runner_was_other_jobs) {
                // `⇄`: it ran on a runner registered for another job (see Decisions).
                (Some(name), true) => format!("⇄ {name}"),
                (Some(name), false) => name.clone(),
                (None, _) => "-".into(),
            };
            cells.push(Cell::from(runner));
            cells.push(Cell::from(
                v.worker_entry.map_or("-".into(), |w| w.to_string()),
            ));
        }
        cells.push(Cell::from(job_time(r, now)));
        let conclusion = v.conclusion.clone().unwrap_or_default();
        cells.push(Cell::from(Span::styled(
            conclusion.clone(),
            theme.conclusion(&conclusion),
        )));
        let row = Row::new(cells);
        if attention {
            row.style(theme.alert())
        } else {
            row
        }
    });
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Fill(2),
            Constraint::Fill(3),
            Constraint::Fill(3),
            Constraint::Fill(3),
            Constraint::Length(2),
            Constraint::Length(6),
            Constraint::Length(9),
        ]
    } else {
        vec![
            Constraint::Length(12),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(3),
            Constraint::Length(6),
            Constraint::Length(9),
        ]
    };
    let selected = app
        .selected
        .and_then(|id| jobs.iter().position(|r| r.view.id == id));
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .row_highlight_style(theme.selected())
        .block(block);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}
