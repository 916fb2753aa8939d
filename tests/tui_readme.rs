//! The README opens with a capture of the dashboard and lists exactly the keymap's keys, so
//! neither can drift from the code. `assets/README-dashboard.md` is the section as written
//! here; README.md is where it is spliced.

use megascaler::tui::keymap;

fn read(relative: &str) -> String {
    let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first fenced code block of a Markdown text.
fn first_code_block(markdown: &str) -> Option<String> {
    let mut lines = markdown.lines().skip_while(|l| !l.starts_with("```"));
    lines.next()?;
    let block: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    Some(block.join("\n"))
}

#[test]
fn the_capture_is_a_whole_dashboard() {
    let capture = read("assets/dashboard.txt");
    assert!(capture.lines().count() >= 24, "a whole screen");
    for pane in [
        "Jobs ─",
        "Output ─",
        "Decisions",
        "Tokens & budget",
        "? help",
    ] {
        assert!(capture.contains(pane), "the capture shows {pane:?}");
    }
}

#[test]
fn the_dashboard_section_opens_with_the_capture_and_lists_every_key() {
    let section = read("assets/README-dashboard.md");
    let capture = read("assets/dashboard.txt");
    assert_eq!(
        first_code_block(&section).as_deref(),
        Some(capture.trim_end()),
        "the section's first block is assets/dashboard.txt"
    );
    let rows = keymap::markdown_rows();
    assert!(
        section.contains(&rows),
        "the section lists the keys:\n{rows}"
    );
}

#[test]
fn readme_opens_with_the_dashboard_and_lists_every_key() {
    let readme = read("README.md");
    let capture = read("assets/dashboard.txt");
    assert_eq!(
        first_code_block(&readme).as_deref(),
        Some(capture.trim_end()),
        "README.md's first code block is the dashboard capture (splice assets/README-dashboard.md)"
    );
    let rows = keymap::markdown_rows();
    assert!(readme.contains(&rows), "README.md lists the keys:\n{rows}");
}
