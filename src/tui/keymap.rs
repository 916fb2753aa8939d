//! Keys as data: which key does what, in which context, with the words the help shows.
//!
//! Owns [`BINDINGS`], the one table from keys to [`Action`]s, and [`resolve`]. The help overlay
//! is generated from the same table, so it cannot drift from what the keys do. It must not act
//! on anything: an [`Action`] is handed to [`crate::tui::app::App::handle`].

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a person asked for, before the app decides what it means right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    NextPane,
    PrevPane,
    /// Open the selected job's output.
    Open,
    /// Start typing a filter.
    Filter,
    /// Next sort order of the jobs.
    Sort,
    CancelJob,
    Redispatch,
    KillWorker,
    TogglePause,
    Follow,
    Help,
    Quit,
    /// Yes, in a confirmation dialog.
    Confirm,
    /// No / close, in a dialog or the help.
    Dismiss,
    /// A character typed into the filter.
    FilterInput(char),
    FilterBackspace,
    /// Keep the filter and go back to the jobs.
    FilterDone,
    /// Drop the filter.
    FilterClear,
}

/// Where the keyboard is: each context has its own bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The panes.
    Normal,
    /// Typing a filter after `/`.
    Filter,
    /// A confirmation dialog is open.
    Dialog,
    /// The help overlay is open.
    Help,
}

impl Context {
    /// The heading of this context in the help.
    pub fn title(self) -> &'static str {
        match self {
            Context::Normal => "Panes",
            Context::Filter => "Filter (after /)",
            Context::Dialog => "Confirmation dialog",
            Context::Help => "Help",
        }
    }
}

/// One key as written in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A character, whatever Shift did to produce it (`K` is Shift-k).
    Char(char),
    /// Control plus a character.
    Ctrl(char),
    /// A named key (arrows, Enter, Tab…).
    Code(KeyCode),
}

impl Key {
    /// How the help writes the key.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{c}"),
            Key::Code(code) => match code {
                KeyCode::Up => "↑".into(),
                KeyCode::Down => "↓".into(),
                KeyCode::Left => "←".into(),
                KeyCode::Right => "→".into(),
                KeyCode::Enter => "Enter".into(),
                KeyCode::Tab => "Tab".into(),
                KeyCode::BackTab => "Shift-Tab".into(),
                KeyCode::Esc => "Esc".into(),
                KeyCode::Home => "Home".into(),
                KeyCode::End => "End".into(),
                KeyCode::PageUp => "PgUp".into(),
                KeyCode::PageDown => "PgDn".into(),
                KeyCode::Backspace => "Backspace".into(),
                other => format!("{other:?}"),
            },
        }
    }

    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        match (self, event.code) {
            (Key::Char(k), KeyCode::Char(c)) => !ctrl && k == c,
            (Key::Ctrl(k), KeyCode::Char(c)) => ctrl && k.eq_ignore_ascii_case(&c),
            (Key::Code(k), code) => !ctrl && k == code,
            _ => false,
        }
    }
}

/// One row of the keymap.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    /// What the key does, for the help overlay.
    pub description: &'static str,
}

const fn bind(
    context: Context,
    keys: &'static [Key],
    action: Action,
    description: &'static str,
) -> Binding {
    Binding {
        context,
        keys,
        action,
        description,
    }
}

use Context::{Dialog, Filter, Help, Normal};
use Key::{Char, Code, Ctrl};

/// The keymap. Order is the order of the help.
pub const BINDINGS: &[Binding] = &[
    bind(
        Normal,
        &[Char('j'), Code(KeyCode::Down)],
        Action::Down,
        "next job / scroll down",
    ),
    bind(
        Normal,
        &[Char('k'), Code(KeyCode::Up)],
        Action::Up,
        "previous job / scroll up",
    ),
    bind(
        Normal,
        &[Char('g'), Code(KeyCode::Home)],
        Action::Top,
        "first job / top",
    ),
    bind(
        Normal,
        &[Char('G'), Code(KeyCode::End)],
        Action::Bottom,
        "last job / end",
    ),
    bind(Normal, &[Code(KeyCode::PageUp)], Action::PageUp, "page up"),
    bind(
        Normal,
        &[Code(KeyCode::PageDown)],
        Action::PageDown,
        "page down",
    ),
    bind(Normal, &[Code(KeyCode::Tab)], Action::NextPane, "next pane"),
    bind(
        Normal,
        &[Code(KeyCode::BackTab)],
        Action::PrevPane,
        "previous pane",
    ),
    bind(
        Normal,
        &[Code(KeyCode::Enter)],
        Action::Open,
        "open the job's output",
    ),
    bind(Normal, &[Char('/')], Action::Filter, "filter jobs"),
    bind(Normal, &[Char('s')], Action::Sort, "sort jobs (cycles)"),
    bind(
        Normal,
        &[Char('f')],
        Action::Follow,
        "follow the output's tail",
    ),
    bind(Normal, &[Char('c')], Action::CancelJob, "cancel the job *"),
    bind(
        Normal,
        &[Char('r')],
        Action::Redispatch,
        "re-dispatch or re-run *",
    ),
    bind(
        Normal,
        &[Char('K')],
        Action::KillWorker,
        "kill the job's worker *",
    ),
    bind(
        Normal,
        &[Char('p')],
        Action::TogglePause,
        "pause or resume intake",
    ),
    bind(Normal, &[Char('?')], Action::Help, "this help"),
    bind(
        Normal,
        &[Char('q'), Ctrl('c')],
        Action::Quit,
        "quit (graceful shutdown)",
    ),
    bind(
        Filter,
        &[Code(KeyCode::Enter)],
        Action::FilterDone,
        "keep the filter",
    ),
    bind(
        Filter,
        &[Code(KeyCode::Esc)],
        Action::FilterClear,
        "drop the filter",
    ),
    bind(
        Filter,
        &[Code(KeyCode::Backspace)],
        Action::FilterBackspace,
        "delete a character",
    ),
    bind(
        Dialog,
        &[Char('y'), Code(KeyCode::Enter)],
        Action::Confirm,
        "yes, do it",
    ),
    bind(
        Dialog,
        &[Char('n'), Code(KeyCode::Esc)],
        Action::Dismiss,
        "no, go back",
    ),
    bind(
        Help,
        &[Code(KeyCode::Esc), Char('?'), Char('q')],
        Action::Dismiss,
        "close the help",
    ),
];

/// The action of a key in a context, if any. Key releases and repeats are ignored.
pub fn resolve(context: Context, event: &KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    // Ctrl-C always means quit, even in a dialog or while typing a filter.
    if matches!(context, Context::Dialog | Context::Filter) && Ctrl('c').matches(event) {
        return Some(Action::Quit);
    }
    let bound = BINDINGS
        .iter()
        .filter(|b| b.context == context)
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.action);
    match (bound, context, event.code) {
        (Some(action), _, _) => Some(action),
        (None, Context::Filter, KeyCode::Char(c))
            if !event.modifiers.contains(KeyModifiers::CONTROL) =>
        {
            Some(Action::FilterInput(c))
        }
        _ => None,
    }
}

/// The help's rows per context: keys joined with `/`, and the description.
pub fn help_rows() -> Vec<(Context, String, &'static str)> {
    BINDINGS
        .iter()
        .map(|b| {
            let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
            (b.context, keys.join("/"), b.description)
        })
        .collect()
}

/// The keymap as Markdown table rows (`| keys | what |`), for the README.
pub fn markdown_rows() -> String {
    let mut out = String::new();
    for b in BINDINGS {
        let keys: Vec<String> = b.keys.iter().map(|k| format!("`{}`", k.label())).collect();
        let description = b.description.replace('*', "\\*");
        let scope = match b.context {
            Context::Normal => "",
            Context::Filter => " (in the filter)",
            Context::Dialog => " (in a dialog)",
            Context::Help => " (in the help)",
        };
        out.push_str(&format!("| {} | {description}{scope} |\n", keys.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn the_issue_keys_resolve_in_the_panes() {
        let cases = [
            (KeyCode::Char('j'), Action::Down),
            (KeyCode::Down, Action::Down),
            (KeyCode::Char('k'), Action::Up),
            (KeyCode::Up, Action::Up),
            (KeyCode::Char('g'), Action::Top),
            (KeyCode::Char('G'), Action::Bottom),
            (KeyCode::Tab, Action::NextPane),
            (KeyCode::Enter, Action::Open),
            (KeyCode::Char('/'), Action::Filter),
            (KeyCode::Char('c'), Action::CancelJob),
            (KeyCode::Char('r'), Action::Redispatch),
            (KeyCode::Char('K'), Action::KillWorker),
            (KeyCode::Char('p'), Action::TogglePause),
            (KeyCode::Char('f'), Action::Follow),
            (KeyCode::Char('?'), Action::Help),
            (KeyCode::Char('q'), Action::Quit),
        ];
        for (code, action) in cases {
            assert_eq!(
                resolve(Context::Normal, &key(code)),
                Some(action),
                "{code:?}"
            );
        }
    }

    #[test]
    fn shift_is_part_of_the_character() {
        let shift_k = KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(resolve(Context::Normal, &shift_k), Some(Action::KillWorker));
    }

    #[test]
    fn ctrl_c_quits_and_ctrl_letters_are_not_plain_letters() {
        let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        assert_eq!(resolve(Context::Normal, &ctrl('c')), Some(Action::Quit));
        assert_eq!(resolve(Context::Dialog, &ctrl('c')), Some(Action::Quit));
        assert_eq!(resolve(Context::Filter, &ctrl('c')), Some(Action::Quit));
        assert_eq!(resolve(Context::Normal, &ctrl('k')), None);
    }

    #[test]
    fn the_filter_takes_letters_that_are_keys_elsewhere() {
        assert_eq!(
            resolve(Context::Filter, &key(KeyCode::Char('q'))),
            Some(Action::FilterInput('q'))
        );
        assert_eq!(
            resolve(Context::Filter, &key(KeyCode::Enter)),
            Some(Action::FilterDone)
        );
        assert_eq!(
            resolve(Context::Filter, &key(KeyCode::Esc)),
            Some(Action::FilterClear)
        );
    }

    #[test]
    fn dialogs_only_know_yes_and_no() {
        assert_eq!(
            resolve(Context::Dialog, &key(KeyCode::Char('y'))),
            Some(Action::Confirm)
        );
        assert_eq!(
            resolve(Context::Dialog, &key(KeyCode::Esc)),
            Some(Action::Dismiss)
        );
        assert_eq!(resolve(Context::Dialog, &key(KeyCode::Char('c'))), None);
    }

    #[test]
    fn releases_are_ignored() {
        let mut e = key(KeyCode::Char('q'));
        e.kind = KeyEventKind::Release;
        assert_eq!(resolve(Context::Normal, &e), None);
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.context == b.context {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{k:?} twice in {:?}", a.context);
                    }
                }
            }
        }
    }

    #[test]
    fn help_rows_cover_every_binding() {
        let rows = help_rows();
        assert_eq!(rows.len(), BINDINGS.len());
        assert!(rows.contains(&(Context::Normal, "j/↓".into(), "next job / scroll down")));
    }
}
