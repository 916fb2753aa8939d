//! Snapshots of every pane, the help and the confirmation dialog at 80x24 and 120x40, drawn
//! from the sample story with a fixed clock (`insta`; review with `cargo insta review`).

use crate::engine::event::Event;
use crate::tui::app::{App, Pane};
use crate::tui::keymap::Action;
use crate::tui::sample::{self, at, t0};
use crate::tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::style::Color;
use std::time::Duration;

fn sample_app() -> App {
    let mut app = App::new(sample::workers(), Duration::from_secs(45));
    for e in sample::events() {
        app.apply(e, t0());
    }
    app
}

fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    app.output_rows = views::output_rows(Rect::new(0, 0, width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| views::render(f, app, t0()))
        .expect("draw");
    terminal
}

#[test]
fn dashboard_wide_120x40() {
    let mut app = sample_app();
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn jobs_and_output_80x24() {
    let mut app = sample_app();
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn output_scrolled_back_80x24() {
    let mut app = sample_app();
    app.handle(Action::Open);
    app.output_rows = views::output_rows(Rect::new(0, 0, 80, 24));
    for _ in 0..5 {
        app.handle(Action::Up);
    }
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn decisions_for_a_job_that_took_another_runner_80x24() {
    let mut app = sample_app();
    app.selected = Some(102);
    app.handle(Action::NextPane);
    app.handle(Action::NextPane);
    assert_eq!(app.focus, Pane::Decisions);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn decisions_for_an_unmatched_job_120x40() {
    let mut app = sample_app();
    app.selected = Some(104);
    app.focus = Pane::Decisions;
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn tokens_80x24() {
    let mut app = sample_app();
    app.handle(Action::PrevPane);
    assert_eq!(app.focus, Pane::Tokens);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn expired_tokens_and_a_fault_120x40() {
    let mut app = sample_app();
    let mut tokens = app.model.tokens.clone();
    tokens[0].registration_token_expires = Some(at(-30));
    tokens[0].jwt_expires = None;
    app.apply(Event::Tokens(tokens), t0());
    app.apply(
        Event::Fault {
            component: "poller".into(),
            message: "GET /repos/acme/widgets/actions/runs: HTTP 502".into(),
        },
        at(-10),
    );
    app.model.intake.paused = true;
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn filter_being_typed_80x24() {
    let mut app = sample_app();
    app.handle(Action::Filter);
    for c in "lint".chars() {
        app.handle(Action::FilterInput(c));
    }
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn no_jobs_yet_80x24() {
    let mut app = App::new(sample::workers(), Duration::from_secs(45));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn help_80x24() {
    let mut app = sample_app();
    app.handle(Action::Help);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn help_120x40() {
    let mut app = sample_app();
    app.handle(Action::Help);
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn confirm_cancel_80x24() {
    let mut app = sample_app();
    app.handle(Action::CancelJob);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn confirm_kill_120x40() {
    let mut app = sample_app();
    app.handle(Action::KillWorker);
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn confirm_quit_with_workers_running_80x24() {
    let mut app = sample_app();
    app.handle(Action::Quit);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn shutting_down_80x24() {
    let mut app = sample_app();
    app.handle(Action::Quit);
    app.handle(Action::Confirm);
    app.apply(
        Event::ShuttingDown {
            message: "Shutting down: cancelling 1 running worker (grace 45s).".into(),
        },
        t0(),
    );
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn unmatched_and_failed_rows_are_drawn_in_the_alert_colour() {
    let mut app = sample_app();
    let terminal = draw(&mut app, 120, 40);
    let buffer = terminal.backend().buffer();
    let row_of = |needle: &str| {
        (0..buffer.area.height)
            .find(|&y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect();
                line.contains(needle)
            })
            .expect("row on screen")
    };
    // Column 1 is the first cell inside the border: the state text.
    assert_eq!(buffer[(2, row_of("! unmatched"))].fg, Color::Red);
    assert_eq!(buffer[(2, row_of("! failed"))].fg, Color::Red);
    assert_ne!(buffer[(2, row_of("completed"))].fg, Color::Red);
}

#[test]
fn no_color_draws_the_same_text_without_colours() {
    let mut coloured = sample_app();
    let mut plain = sample_app();
    plain.theme = crate::tui::theme::Theme { color: false };
    let a = draw(&mut coloured, 120, 40);
    let b = draw(&mut plain, 120, 40);
    assert_eq!(a.backend().to_string(), b.backend().to_string());
    let buffer = b.backend().buffer();
    assert!(
        buffer
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
}

#[test]
fn countdowns_move_with_the_clock() {
    let mut app = sample_app();
    let mut later = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    later
        .draw(|f| views::render(f, &app, at(65)))
        .expect("draw");
    let now = draw(&mut app, 120, 40).backend().to_string();
    let later = later.backend().to_string();
    assert!(
        now.contains("in 4m05s") && later.contains("in 3m00s"),
        "{later}"
    );
}
