use super::*;
use crate::engine::event::{OutputLine, Stream};
use crate::tui::sample::{self, job, t0};

fn sample_app() -> App {
    let mut app = App::new(sample::workers(), Duration::from_secs(45));
    for e in sample::events() {
        app.apply(e, t0());
    }
    app
}

fn ids(app: &App) -> Vec<JobId> {
    app.visible_jobs().iter().map(|r| r.view.id).collect()
}

#[test]
fn newest_first_by_default_and_sort_cycles() {
    let mut app = sample_app();
    assert_eq!(ids(&app), vec![106, 105, 104, 102, 101]);
    app.handle(Action::Sort);
    assert_eq!(app.sort, SortOrder::State);
    assert_eq!(ids(&app), vec![105, 104, 101, 102, 106]);
    app.handle(Action::Sort);
    app.handle(Action::Sort);
    assert_eq!(app.sort, SortOrder::Age);
    assert_eq!(ids(&app)[0], 106);
    app.handle(Action::Sort);
    assert_eq!(app.sort, SortOrder::Newest);
}

#[test]
fn selection_starts_at_the_first_job_and_moves_within_bounds() {
    let mut app = sample_app();
    assert_eq!(app.selected, Some(101), "first job seen stays selected");
    app.handle(Action::Top);
    assert_eq!(app.selected, Some(106));
    app.handle(Action::Up);
    assert_eq!(app.selected, Some(106));
    app.handle(Action::Down);
    assert_eq!(app.selected, Some(105));
    app.handle(Action::Bottom);
    assert_eq!(app.selected, Some(101));
    app.handle(Action::Down);
    assert_eq!(app.selected, Some(101));
}

#[test]
fn filter_typing_narrows_and_esc_drops_it() {
    let mut app = sample_app();
    app.handle(Action::Filter);
    assert_eq!(app.context(), Context::Filter);
    for c in "gpu".chars() {
        app.handle(Action::FilterInput(c));
    }
    assert_eq!(ids(&app), vec![104]);
    assert_eq!(app.selected, Some(104), "selection follows the filter");
    app.handle(Action::FilterDone);
    assert_eq!(app.context(), Context::Normal);
    assert_eq!(app.filter, "gpu");
    app.handle(Action::Filter);
    app.handle(Action::FilterBackspace);
    assert_eq!(app.filter, "gp");
    app.handle(Action::FilterClear);
    assert!(app.filter.is_empty());
    assert_eq!(ids(&app).len(), 5);
}

#[test]
fn cancel_asks_first_and_sends_only_on_confirm() {
    let mut app = sample_app();
    assert_eq!(app.handle(Action::CancelJob), None);
    let dialog = app.dialog.clone().expect("a confirmation dialog");
    assert!(dialog.lines[0].contains("job 101"), "{dialog:?}");
    assert!(dialog.lines[1].contains("cancel request"), "{dialog:?}");
    assert_eq!(app.context(), Context::Dialog);
    assert_eq!(app.handle(Action::Down), None, "other keys do nothing");
    assert_eq!(app.handle(Action::Confirm), Some(Command::CancelJob(101)));
    assert!(app.dialog.is_none());
}

#[test]
fn dismissing_a_dialog_sends_nothing() {
    let mut app = sample_app();
    app.handle(Action::KillWorker);
    assert!(app.dialog.is_some());
    assert_eq!(app.handle(Action::Dismiss), None);
    assert!(app.dialog.is_none());
    assert_eq!(app.handle(Action::Confirm), None);
}

#[test]
fn commands_that_cannot_apply_are_refused_with_a_notice() {
    let mut app = sample_app();
    app.selected = Some(106);
    app.handle(Action::CancelJob);
    assert!(app.dialog.is_none());
    assert_eq!(
        app.notice.as_deref(),
        Some("job 106 is completed; nothing to cancel")
    );
    app.handle(Action::KillWorker);
    assert!(app.dialog.is_none());
    app.selected = Some(101);
    app.handle(Action::Redispatch);
    assert!(app.dialog.is_none(), "a running job is not re-dispatched");
}

#[test]
fn redispatch_says_rerun_for_finished_and_fresh_runner_for_queued() {
    let mut app = sample_app();
    app.selected = Some(105);
    app.handle(Action::Redispatch);
    assert!(app.dialog.as_ref().unwrap().lines[1].contains("re-runs"));
    assert_eq!(app.handle(Action::Confirm), Some(Command::Redispatch(105)));
    app.apply(Event::Job(job(107, "x", &["a"], JobState::Queued)), t0());
    app.selected = Some(107);
    app.handle(Action::Redispatch);
    assert!(app.dialog.as_ref().unwrap().lines[1].contains("fresh runner"));
    app.handle(Action::Dismiss);
    app.selected = Some(104);
    app.handle(Action::Redispatch);
    assert!(
        app.dialog.is_none(),
        "an unmatched job would stay unmatched"
    );
    assert!(
        app.notice
            .as_deref()
            .unwrap_or("")
            .contains("no worker entry")
    );
}

#[test]
fn kill_names_the_process_group() {
    let mut app = sample_app();
    app.handle(Action::KillWorker);
    let d = app.dialog.clone().unwrap();
    assert!(d.lines[1].contains("4242"));
    assert_eq!(app.handle(Action::Confirm), Some(Command::KillWorker(101)));
}

#[test]
fn pause_toggles_on_what_the_engine_reports() {
    let mut app = sample_app();
    assert_eq!(app.handle(Action::TogglePause), Some(Command::PauseIntake));
    app.model.intake.paused = true;
    assert_eq!(app.handle(Action::TogglePause), Some(Command::ResumeIntake));
}

#[test]
fn quit_with_workers_running_explains_and_asks() {
    let mut app = sample_app();
    assert_eq!(app.handle(Action::Quit), None);
    let d = app.dialog.clone().unwrap();
    assert!(d.lines[0].contains("1 worker is still running"), "{d:?}");
    assert!(d.lines.iter().any(|l| l.contains("45s")), "{d:?}");
    assert_eq!(app.handle(Action::Confirm), Some(Command::Shutdown));
    assert_eq!(app.lifecycle, Lifecycle::ShutdownRequested);
    assert_eq!(app.handle(Action::Quit), None, "asked once");
}

#[test]
fn quit_without_workers_shuts_down_at_once() {
    let mut app = App::new(sample::workers(), Duration::from_secs(45));
    app.apply(Event::Job(job(1, "x", &["a"], JobState::Queued)), t0());
    assert_eq!(app.handle(Action::Quit), Some(Command::Shutdown));
}

#[test]
fn help_opens_and_closes() {
    let mut app = sample_app();
    app.handle(Action::Help);
    assert_eq!(app.context(), Context::Help);
    assert_eq!(app.handle(Action::CancelJob), None);
    assert!(app.dialog.is_none(), "keys under the help do nothing");
    app.handle(Action::Dismiss);
    assert_eq!(app.context(), Context::Normal);
}

#[test]
fn tab_cycles_panes_and_enter_opens_output_following() {
    let mut app = sample_app();
    app.handle(Action::NextPane);
    assert_eq!(app.focus, Pane::Output);
    app.handle(Action::NextPane);
    app.handle(Action::NextPane);
    assert_eq!(app.focus, Pane::Tokens);
    app.handle(Action::NextPane);
    assert_eq!(app.focus, Pane::Jobs);
    app.handle(Action::PrevPane);
    assert_eq!(app.focus, Pane::Tokens);
    app.focus = Pane::Jobs;
    app.follow = false;
    app.handle(Action::Open);
    assert_eq!((app.focus, app.follow), (Pane::Output, true));
}

#[test]
fn scrolling_output_stops_following_and_the_end_resumes_it() {
    let mut app = sample_app();
    app.output_rows = 10;
    app.handle(Action::Open);
    app.handle(Action::Up);
    assert!(!app.follow);
    // 31 lines, 10 rows: the last top is 21; one up is 20.
    assert_eq!(app.output_top, 20);
    app.handle(Action::Top);
    assert_eq!(app.output_top, 0);
    // New lines do not move a person who scrolled away.
    app.apply(
        Event::WorkerOutput {
            job: 101,
            lines: vec![OutputLine {
                stream: Stream::Stdout,
                text: "more".into(),
            }],
        },
        t0(),
    );
    assert_eq!((app.output_top, app.follow), (0, false));
    app.handle(Action::Bottom);
    assert!(app.follow);
    app.handle(Action::Up);
    app.handle(Action::Follow);
    assert!(app.follow);
}

#[test]
fn changing_the_selected_job_follows_its_output() {
    let mut app = sample_app();
    app.handle(Action::Open);
    app.handle(Action::Up);
    assert!(!app.follow);
    app.focus = Pane::Jobs;
    app.handle(Action::Up);
    assert!(app.follow);
}

#[test]
fn the_feed_scrolls_back_and_not_past_its_ends() {
    let mut app = sample_app();
    app.focus = Pane::Decisions;
    app.handle(Action::Down);
    assert_eq!(app.feed_scroll, 0);
    app.handle(Action::Up);
    app.handle(Action::Up);
    assert_eq!(app.feed_scroll, 2);
    app.handle(Action::Top);
    assert_eq!(app.feed_scroll, app.model.feed.len() - 1);
}

#[test]
fn a_signal_shuts_down_once_without_asking() {
    let mut app = sample_app();
    app.handle(Action::CancelJob);
    assert_eq!(app.request_shutdown(), Some(Command::Shutdown));
    assert!(app.dialog.is_none());
    assert_eq!(app.request_shutdown(), None);
    assert_eq!(app.handle(Action::Quit), None);
}

#[test]
fn ctrl_c_while_filtering_quits() {
    let mut app = App::new(sample::workers(), Duration::from_secs(45));
    app.handle(Action::Filter);
    assert_eq!(app.handle(Action::Quit), Some(Command::Shutdown));
    assert!(!app.editing_filter);
}
